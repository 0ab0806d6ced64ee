// labctl's vCenter simulator: govmomi's simulator.VPX() model plus what labctl needs from a vCenter.
//
// Build (Debian: golang-go + golang-github-vmware-govmomi-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o vcsim .
//
// Run it in a scratch working directory: CreateNasDatastore needs spec.localPath to be an existing directory
// relative to the working directory (-datastores creates them). The first stdout line is the SDK URL
// (http://user:pass@127.0.0.1:PORT/sdk, https with -tls); the process serves until SIGTERM/SIGINT.
//
// What it adds in front of govmomi's /sdk handler (the simulator's own objects are left alone: wrapping them
// breaks the simulator's type switches, see shared/reference/vsphere-sim.md):
//   - dasConfig storage. govmomi 0.24.2 stores nothing of ReconfigureComputeResource_Task's or CreateClusterEx's
//     dasConfig. The handler decodes the request and applies enabled/admissionControlEnabled and option[] to the
//     cluster's configurationEx the way vCenter does: modify=true merges options by key and an option sent with
//     an empty value removes the key; modify=false replaces dasConfig.
//   - A call counter per SOAP method (GET /_labctl/stats, POST /_labctl/stats/reset) so tests can measure how many
//     calls a labctl operation makes.
//   - Fault injection (POST /_labctl/fault with JSON {"method", "object", "fault", "message", "fields", "count"}):
//     the next `count` calls of `method` on the object named `object` fail with `fault` — a task method returns a
//     task that ends in error (nothing is changed), any other method answers with a SOAP fault.
//   - -api-version reports an older vCenter (about.apiVersion/version/fullName), e.g. 4.1 for the AAM HA keys.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type faultRule struct {
	Method  string          `json:"method"`
	Object  string          `json:"object"`
	Fault   string          `json:"fault"`
	Message string          `json:"message"`
	Fields  json.RawMessage `json:"fields"`
	Count   int             `json:"count"`
}

type interceptor struct {
	next    http.Handler
	sdkPath string
	disks   diskStore
	esx     bool

	clones []cloneRecord
	gen     uint64        // bumped after each call that may change a VM (the harness long-polls it)
	changed chan struct{} // closed and replaced at each bump

	mu     sync.Mutex
	calls  map[string]int
	faults []*faultRule
}

var returnvalRE = regexp.MustCompile(`<returnval type="([A-Za-z]+)">([^<]+)</returnval>`)

func (h *interceptor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/_labctl/stats":
		h.serveStats(w, r)
		return
	case r.URL.Path == "/_labctl/stats/reset":
		h.mu.Lock()
		h.calls = map[string]int{}
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	case r.URL.Path == "/_labctl/fault":
		h.serveFault(w, r)
		return
	case r.URL.Path == "/_labctl/clones":
		h.mu.Lock()
		data, _ := json.Marshal(map[string]interface{}{"clones": h.clones})
		h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(data)
		return
	case r.URL.Path == "/_labctl/guestinfo":
		serveGuestinfo(w, r)
		h.bump()
		return
	case r.URL.Path == "/_labctl/vms":
		h.serveVMs(w, r)
		return
	case r.URL.Path != h.sdkPath || r.Method != http.MethodPost:
		h.next.ServeHTTP(w, r)
		return
	}

	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil { // let the simulator answer with its own fault
		h.count("(undecodable)")
		h.next.ServeHTTP(w, r)
		return
	}
	h.count(method.Name)
	if !readOnly(method.Name) {
		defer h.bump() // after the simulator has answered: the harness sees the new state
	}

	if rule := h.takeFault(method); rule != nil {
		h.answerFault(w, method, rule)
		return
	}

	switch req := method.Body.(type) {
	case *types.ReconfigureComputeResource_Task:
		rec := forward(h.next, r)
		if rec.Code == http.StatusOK {
			applyDasConfig(req.This, req.Spec, req.Modify)
		}
		copyResponse(w, rec)
	case *types.CloneVM_Task:
		if h.esx { // hostd has no CloneVM_Task: cloning is a vCenter service
			h.answerMethodFault(w, method, &types.NotSupported{}, "CloneVM_Task is not supported on a standalone host")
			return
		}
		if fault := checkClone(req); fault != nil {
			h.answerMethodFault(w, method, fault, "")
			return
		}
		saved := diskBackings(req.This) // vcsim's clone writes the clone's file names into the source's disks
		rec := forward(h.next, r)
		if rec.Code == http.StatusOK {
			if clone, ok := taskResult(rec.Body.Bytes()); ok {
				h.afterClone(req, clone, saved)
			}
		}
		copyResponse(w, rec)
	case *types.CreateVM_Task:
		rec := forward(h.next, r)
		if rec.Code == http.StatusOK {
			if vm, ok := taskResult(rec.Body.Bytes()); ok {
				h.afterCreate(vm)
			}
		}
		copyResponse(w, rec)
	case *types.CreateSnapshot_Task:
		rec := forward(h.next, r)
		if rec.Code == http.StatusOK {
			if snap, ok := taskResult(rec.Body.Bytes()); ok {
				h.disks.snapshot(req.This, snap)
			}
		}
		copyResponse(w, rec)
	case *types.Destroy_Task:
		isVM := req.This.Type == "VirtualMachine"
		rec := forward(h.next, r)
		if rec.Code == http.StatusOK && isVM && taskSucceeded(rec.Body.Bytes()) {
			h.disks.remove(req.This)
		}
		copyResponse(w, rec)
	case *types.ReconfigVM_Task:
		rec := forward(h.next, r)
		if rec.Code == http.StatusOK && len(req.Spec.ExtraConfig) > 0 {
			normalizeExtraConfig(req.This)
		}
		copyResponse(w, rec)
	case *types.UpdatePortGroup:
		h.updatePortGroup(w, method, req)
	case *types.CreateClusterEx:
		rec := forward(h.next, r)
		if rec.Code == http.StatusOK {
			if m := returnvalRE.FindSubmatch(rec.Body.Bytes()); m != nil {
				ref := types.ManagedObjectReference{Type: string(m[1]), Value: string(m[2])}
				applyDasConfig(ref, &req.Spec, false)
			}
		}
		copyResponse(w, rec)
	default:
		h.next.ServeHTTP(w, r)
	}
}

func forward(next http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	return rec
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (h *interceptor) count(name string) {
	h.mu.Lock()
	h.calls[name]++
	h.mu.Unlock()
}

func (h *interceptor) serveStats(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	data, _ := json.Marshal(map[string]interface{}{"calls": h.calls})
	h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

func (h *interceptor) serveFault(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	rule := &faultRule{Count: 1, Fault: "HostConfigFault"}
	if err := json.NewDecoder(r.Body).Decode(rule); err != nil || rule.Method == "" || rule.Object == "" {
		http.Error(w, "want JSON {method, object, fault?, message?, fields?, count?}", http.StatusBadRequest)
		return
	}
	if _, ok := newFault(rule); !ok {
		http.Error(w, "unknown fault type "+rule.Fault, http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.faults = append(h.faults, rule)
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// takeFault returns the first armed rule matching this call and uses one of its shots.
func (h *interceptor) takeFault(method *simulator.Method) *faultRule {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.faults) == 0 {
		return nil
	}
	name := objectName(method)
	for i, rule := range h.faults {
		if rule.Method == method.Name && rule.Object == name {
			rule.Count--
			if rule.Count <= 0 {
				h.faults = append(h.faults[:i], h.faults[i+1:]...)
			}
			return rule
		}
	}
	return nil
}

// objectName is the name a fault rule matches: the host name for AddHost_Task and HostDatastoreSystem calls,
// else the name of the managed entity the call is made on.
func objectName(method *simulator.Method) string {
	if req, ok := method.Body.(*types.AddHost_Task); ok {
		return req.Spec.HostName
	}
	obj := simulator.Map.Get(method.This)
	switch o := obj.(type) {
	case *simulator.HostDatastoreSystem:
		if o.Host != nil {
			return o.Host.Name
		}
	case mo.Entity:
		return o.Entity().Name
	}
	return method.This.Value
}

func newFault(rule *faultRule) (types.BaseMethodFault, bool) {
	rtype, ok := types.TypeFunc()(rule.Fault)
	if !ok {
		return nil, false
	}
	val := reflect.New(rtype).Interface()
	fault, ok := val.(types.BaseMethodFault)
	if !ok {
		return nil, false
	}
	if len(rule.Fields) > 0 {
		if err := json.Unmarshal(rule.Fields, val); err != nil {
			return nil, false
		}
	}
	return fault, true
}

func (h *interceptor) answerFault(w http.ResponseWriter, method *simulator.Method, rule *faultRule) {
	fault, _ := newFault(rule)
	msg := rule.Message
	if msg == "" {
		msg = fmt.Sprintf("injected %s on %s", rule.Fault, rule.Object)
	}
	h.answerMethodFault(w, method, fault, msg)
}

// answerMethodFault answers a call with `fault`: a *_Task method gets a task that ends in it (nothing changed),
// any other method a SOAP fault.
func (h *interceptor) answerMethodFault(w http.ResponseWriter, method *simulator.Method, fault types.BaseMethodFault,
	msg string) {
	faultName := reflect.TypeOf(fault).Elem().Name()
	if msg == "" {
		msg = faultName
	}
	if strings.HasSuffix(method.Name, "_Task") {
		base := strings.TrimSuffix(method.Name, "_Task")
		id := strings.ToLower(base[:1]) + base[1:] + "Task"
		task := simulator.CreateTask(method.This, id, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
			return nil, fault
		})
		ref := task.Run()
		simulator.Map.Update(task, []types.PropertyChange{
			{Name: "info.error", Val: types.LocalizedMethodFault{Fault: fault, LocalizedMessage: msg}},
		})
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
			`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" `+
			`xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`+
			`<soapenv:Body><%sResponse xmlns="urn:vim25"><returnval type="Task">%s</returnval></%sResponse>`+
			`</soapenv:Body></soapenv:Envelope>`, method.Name, html.EscapeString(ref.Value), method.Name)
		return
	}
	writeSoapFault(w, msg, faultName)
}

func writeSoapFault(w http.ResponseWriter, msg string, faultName string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" `+
		`xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`+
		`<soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>%s</faultstring>`+
		`<detail><%sFault xmlns="urn:vim25" xsi:type="%s"></%sFault></detail></soapenv:Fault>`+
		`</soapenv:Body></soapenv:Envelope>`, html.EscapeString(msg), faultName, faultName, faultName)
}

// applyDasConfig stores a ClusterConfigSpecEx's dasConfig on the cluster like vCenter does.
func applyDasConfig(ref types.ManagedObjectReference, spec types.BaseComputeResourceConfigSpec, modify bool) {
	cspec, ok := spec.(*types.ClusterConfigSpecEx)
	if !ok || cspec.DasConfig == nil {
		return
	}
	cluster, ok := simulator.Map.Get(ref).(*simulator.ClusterComputeResource)
	if !ok {
		return
	}
	simulator.Map.WithLock(cluster, func() {
		cfg, ok := cluster.ConfigurationEx.(*types.ClusterConfigInfoEx)
		if !ok {
			return
		}
		in := cspec.DasConfig
		if !modify {
			cfg.DasConfig = types.ClusterDasConfigInfo{}
		}
		das := &cfg.DasConfig
		if in.Enabled != nil {
			das.Enabled = types.NewBool(*in.Enabled)
		}
		if in.AdmissionControlEnabled != nil {
			das.AdmissionControlEnabled = types.NewBool(*in.AdmissionControlEnabled)
		}
		if in.HostMonitoring != "" {
			das.HostMonitoring = in.HostMonitoring
		}
		for _, o := range in.Option {
			opt := o.GetOptionValue()
			value := ""
			if opt.Value != nil {
				value = fmt.Sprint(opt.Value)
			}
			das.Option = removeOption(das.Option, opt.Key)
			if value != "" {
				das.Option = append(das.Option, &types.OptionValue{Key: opt.Key, Value: value})
			}
		}
	})
}

func removeOption(opts []types.BaseOptionValue, key string) []types.BaseOptionValue {
	out := opts[:0]
	for _, o := range opts {
		if o.GetOptionValue().Key != key {
			out = append(out, o)
		}
	}
	return out
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("labctl-vcsim: ")
	dc := flag.Int("dc", 1, "datacenters")
	cluster := flag.Int("cluster", 1, "clusters per datacenter")
	clusterHosts := flag.Int("host", 3, "hosts per cluster")
	standalone := flag.Int("standalone", 0, "standalone hosts per datacenter")
	vms := flag.Int("vm", 0, "virtual machines per host")
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on (loopback)")
	user := flag.String("user", "user", "login user name")
	apiVersion := flag.String("api-version", "", "report this vCenter API version (e.g. 4.1) instead of 6.5")
	esxMode := flag.Bool("esx", false, "simulate a standalone ESX host (ha-datacenter) instead of a vCenter")
	disksDir := flag.String("disks", "", "directory holding each VM's simulated disk contents (<dir>/<vm moid>), "+
		"copied at snapshots and clones, removed with the VM")
	dcName := flag.String("dc-name", "", "name of the first datacenter (default DC0)")
	clusterName := flag.String("cluster-name", "", "name of the first cluster (default DC0_C0)")
	dsName := flag.String("datastore-name", "", "name of the first local datastore (default LocalDS_0)")
	portgroups := flag.String("portgroups", "", "comma-separated standard portgroups to create on every host's "+
		"vSwitch0 (the user's existing networks)")
	useTLS := flag.Bool("tls", false, "serve https with a self-signed certificate (default: plain http)")
	datastores := flag.String("datastores", "", "comma-separated directory names to create in the working "+
		"directory (CreateNasDatastore's localPath)")
	flag.Parse()

	password := os.Getenv("LABCTL_VCSIM_PASSWORD")
	if password == "" {
		password = "pass"
	}

	for _, name := range strings.Split(*datastores, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if name != filepath.Base(name) || name == "." || name == ".." {
			log.Fatalf("datastore name %q: a plain directory name is required", name)
		}
		if err := os.MkdirAll(name, 0o755); err != nil {
			log.Fatal(err)
		}
	}

	model := simulator.VPX()
	if *esxMode {
		model = simulator.ESX()
	} else {
		model.Datacenter = *dc
		model.Cluster = *cluster
		model.ClusterHost = *clusterHosts
		model.Host = *standalone
	}
	model.Machine = *vms
	if *apiVersion != "" && !*esxMode {
		about := &model.ServiceContent.About
		about.ApiVersion = *apiVersion
		// about.version is x.y.z: "4.1" -> "4.1.0", "8.0.2.0" -> "8.0.2"
		parts := strings.Split(*apiVersion, ".")
		for len(parts) < 3 {
			parts = append(parts, "0")
		}
		about.Version = strings.Join(parts[:3], ".")
		name := "VMware vCenter Server"
		if parts[0] == "2" {
			name = "VMware VirtualCenter"
		}
		about.FullName = fmt.Sprintf("%s %s build-0 (labctl-vcsim)", name, about.Version)
	}
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	defer model.Remove()
	if *esxMode {
		fixEsxDatacenter()
	}
	renameFirst("Datacenter", *dcName)
	renameFirst("ClusterComputeResource", *clusterName)
	renameFirst("Datastore", *dsName)

	model.Service.TLS = nil
	if *useTLS {
		model.Service.TLS = new(tls.Config)
	}
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, password)}
	server := model.Service.NewServer()
	mux := server.Config.Handler
	if *portgroups != "" { // set up through the API before the interceptor counts calls
		if err := addPortgroups(server.URL, strings.Split(*portgroups, ",")); err != nil {
			log.Fatal(err)
		}
	}
	// Swapped before the URL is printed, so before any client can connect.
	server.Config.Handler = &interceptor{next: mux, sdkPath: server.URL.Path, calls: map[string]int{},
		disks: diskStore{root: *disksDir}, changed: make(chan struct{}), esx: *esxMode}

	fmt.Println(server.URL.String())
	_ = os.Stdout.Sync()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	server.Close()
	model.Remove()
}

// ---------------------------------------------------------------- the target side (labctl's vSphere target)
//
// What vcsim 0.24.2 drops and labctl relies on when it deploys a lab onto vSphere, kept here so that a test sees
// what a real vSphere would do (docs/vsphere-target.md lists each gap):
//   - CloneVM_Task ignores spec.location.diskMoveType and spec.snapshot: every clone is a full copy with new,
//     parentless disks. Here the request is checked (an unknown diskMoveType, or a linked clone without a
//     snapshot, fails the task like vCenter's InvalidArgument), recorded (GET /_labctl/clones) and applied: a
//     clone made with createNewChildDiskBacking gets disks whose backing.parent is the source's disk, as a
//     linked clone's delta disk has; any other move type leaves backing.parent empty (a full copy).
//   - CloneVM_Task renames the source's disk files to the clone's (the devices are shared): the clone gets its
//     own devices here and the source keeps its disks' file names, as on vSphere.
//   - A clone does not inherit its source's extraConfig (vcsim uses only the spec's): merged here, the spec's
//     keys winning, as vSphere copies the source's configuration.
//   - ReconfigVM_Task appends extraConfig entries instead of replacing a key, and an empty value does not remove
//     it: normalized here (last value wins; empty removes), as vSphere does.
//   - HostNetworkSystem.UpdatePortGroup does not exist: implemented here (the portgroup's spec is replaced;
//     NotFound for an unknown portgroup or vSwitch).
//   - Disks have no contents. With -disks DIR, DIR/<vm moid>/ is the VM's disk (the simulated ESX host's state,
//     written by the harness); CreateSnapshot_Task copies it to DIR/<vm>@<snapshot>, CloneVM_Task copies the
//     snapshot's (or the current) disk to the clone, Destroy_Task removes a VM's disks.
//   - Guest-set variables (vmtoolsd --cmd "info-set guestinfo.x v") reach the VM's configuration on a real host;
//     POST /_labctl/guestinfo {"vm": moid, "values": {key: value}} is the harness's way of reporting them.

type cloneRecord struct {
	Clone        string `json:"clone"`
	Name         string `json:"name"`
	Source       string `json:"source"`
	Snapshot     string `json:"snapshot"`
	DiskMoveType string `json:"diskMoveType"`
	Linked       bool   `json:"linked"`
}

var diskMoveTypes = map[string]bool{
	"": true, "moveAllDiskBackingsAndAllowSharing": true, "moveAllDiskBackingsAndDisallowSharing": true,
	"moveChildMostDiskBacking": true, "createNewChildDiskBacking": true, "moveAllDiskBackingsAndConsolidate": true,
}

func checkClone(req *types.CloneVM_Task) types.BaseMethodFault {
	move := req.Spec.Location.DiskMoveType
	if !diskMoveTypes[move] {
		return &types.InvalidArgument{InvalidProperty: "spec.location.diskMoveType"}
	}
	if move == "createNewChildDiskBacking" {
		if req.Spec.Snapshot == nil {
			return &types.InvalidArgument{InvalidProperty: "spec.snapshot"}
		}
		if _, ok := simulator.Map.Get(*req.Spec.Snapshot).(*simulator.VirtualMachineSnapshot); !ok {
			return &types.InvalidArgument{InvalidProperty: "spec.snapshot"}
		}
	}
	return nil
}

var taskRE = regexp.MustCompile(`<returnval type="Task">([^<]+)</returnval>`)

// taskResult reads the moref a (synchronous) simulator task returned, from the response that named the task.
func taskResult(body []byte) (types.ManagedObjectReference, bool) {
	m := taskRE.FindSubmatch(body)
	if m == nil {
		return types.ManagedObjectReference{}, false
	}
	task, ok := simulator.Map.Get(types.ManagedObjectReference{Type: "Task", Value: string(m[1])}).(*simulator.Task)
	if !ok || task.Info.State != types.TaskInfoStateSuccess {
		return types.ManagedObjectReference{}, false
	}
	ref, ok := task.Info.Result.(types.ManagedObjectReference)
	return ref, ok
}

func taskSucceeded(body []byte) bool {
	m := taskRE.FindSubmatch(body)
	if m == nil {
		return false
	}
	task, ok := simulator.Map.Get(types.ManagedObjectReference{Type: "Task", Value: string(m[1])}).(*simulator.Task)
	return ok && task.Info.State == types.TaskInfoStateSuccess
}

// diskBackings: a copy of each disk backing of the VM, in device order (nil when it is not a VM).
func diskBackings(ref types.ManagedObjectReference) []types.VirtualDiskFlatVer2BackingInfo {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return nil
	}
	var out []types.VirtualDiskFlatVer2BackingInfo
	simulator.Map.WithLock(vm, func() {
		for _, d := range vm.Config.Hardware.Device {
			if disk, ok := d.(*types.VirtualDisk); ok {
				if b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
					out = append(out, *b)
				}
			}
		}
	})
	return out
}

func (h *interceptor) afterClone(req *types.CloneVM_Task, cloneRef types.ManagedObjectReference,
	saved []types.VirtualDiskFlatVer2BackingInfo) {
	src, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	clone, ok2 := simulator.Map.Get(cloneRef).(*simulator.VirtualMachine)
	if !ok || !ok2 {
		return
	}
	// vcsim 0.24.2 gives the clone the source's device objects and then renames their files: the clone gets
	// devices of its own, and the source's disks get their file names back (a clone never changes its source)
	simulator.Map.WithLock(clone, func() {
		for j, d := range clone.Config.Hardware.Device {
			if disk, ok := d.(*types.VirtualDisk); ok {
				nd := *disk
				if b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
					nb := *b
					nd.Backing = &nb
				}
				clone.Config.Hardware.Device[j] = &nd
			}
		}
	})
	srcChanged := false
	simulator.Map.WithLock(src, func() {
		i := 0
		for _, d := range src.Config.Hardware.Device {
			if disk, ok := d.(*types.VirtualDisk); ok {
				if b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && i < len(saved) {
					if b.FileName != saved[i].FileName {
						*b = saved[i]
						srcChanged = true
					}
					i++
				}
			}
		}
	})
	if srcChanged {
		simulator.Map.Update(src, []types.PropertyChange{
			{Name: "config.hardware.device", Val: src.Config.Hardware.Device},
		})
	}
	move := req.Spec.Location.DiskMoveType
	linked := move == "createNewChildDiskBacking"
	snap := ""
	if req.Spec.Snapshot != nil {
		snap = req.Spec.Snapshot.Value
	}
	simulator.Map.WithLock(clone, func() {
		// the source's extraConfig, then the spec's (vcsim kept only the spec's)
		var spec []types.BaseOptionValue
		if req.Spec.Config != nil {
			spec = req.Spec.Config.ExtraConfig
		}
		merged := mergeOptions(nil, src.Config.ExtraConfig)
		clone.Config.ExtraConfig = mergeOptions(merged, spec)
		var srcDisks []*types.VirtualDisk
		for _, d := range src.Config.Hardware.Device {
			if disk, ok := d.(*types.VirtualDisk); ok {
				srcDisks = append(srcDisks, disk)
			}
		}
		i := 0
		for _, d := range clone.Config.Hardware.Device {
			disk, ok := d.(*types.VirtualDisk)
			if !ok {
				continue
			}
			back, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
			if ok && linked && i < len(srcDisks) {
				if sb, ok := srcDisks[i].Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
					parent := *sb
					parent.Parent = nil
					back.Parent = &parent
					back.DeltaDiskFormat = "redoLogFormat"
				}
			} else if ok {
				back.Parent = nil
			}
			i++
		}
	})
	simulator.Map.Update(clone, []types.PropertyChange{
		{Name: "config.extraConfig", Val: clone.Config.ExtraConfig},
		{Name: "config.hardware.device", Val: clone.Config.Hardware.Device},
	})
	h.mu.Lock()
	h.clones = append(h.clones, cloneRecord{Clone: cloneRef.Value, Name: req.Name, Source: req.This.Value,
		Snapshot: snap, DiskMoveType: move, Linked: linked})
	h.mu.Unlock()
	h.disks.clone(req.This, snap, cloneRef, src.Name)
}

// afterCreate: a VM created with a disk whose backing names a parent (a linked clone made by hand, the way a
// standalone host has to: CreateVM_Task with a child of the snapshot's disk) starts from that parent's contents.
// vcsim makes no delta files, so a parent is found as the disk of the snapshot (the source's current snapshot
// first) or VM that has this file name.
func (h *interceptor) afterCreate(ref types.ManagedObjectReference) {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	parent := ""
	simulator.Map.WithLock(vm, func() {
		for _, d := range vm.Config.Hardware.Device {
			if disk, ok := d.(*types.VirtualDisk); ok {
				if b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && b.Parent != nil {
					parent = b.Parent.FileName
					break
				}
			}
		}
	})
	if parent == "" {
		return
	}
	srcVM, snap := findDiskOwner(parent, ref)
	if srcVM == nil {
		log.Printf("%s: parent disk %s belongs to no VM", vm.Name, parent)
		return
	}
	h.disks.clone(srcVM.Self, snap, ref, srcVM.Name)
}

func diskFiles(devices []types.BaseVirtualDevice) []string {
	var out []string
	for _, d := range devices {
		if disk, ok := d.(*types.VirtualDisk); ok {
			if b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
				out = append(out, b.FileName)
			}
		}
	}
	return out
}

func findDiskOwner(file string, not types.ManagedObjectReference) (*simulator.VirtualMachine, string) {
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm, ok := e.(*simulator.VirtualMachine)
		if !ok || vm.Self == not {
			continue
		}
		var found *simulator.VirtualMachine
		snap := ""
		simulator.Map.WithLock(vm, func() {
			if vm.Snapshot != nil && vm.Snapshot.CurrentSnapshot != nil {
				if s, ok := simulator.Map.Get(*vm.Snapshot.CurrentSnapshot).(*simulator.VirtualMachineSnapshot); ok {
					if hasString(diskFiles(s.Config.Hardware.Device), file) {
						found, snap = vm, s.Self.Value
						return
					}
				}
			}
			if vm.Config != nil && hasString(diskFiles(vm.Config.Hardware.Device), file) {
				found = vm
			}
		})
		if found != nil {
			return found, snap
		}
	}
	return nil, ""
}

// mergeOptions sets each of `in` on `base` by key (last wins); an empty value removes the key.
func mergeOptions(base []types.BaseOptionValue, in []types.BaseOptionValue) []types.BaseOptionValue {
	out := append([]types.BaseOptionValue(nil), base...)
	for _, o := range in {
		opt := o.GetOptionValue()
		value := ""
		if opt.Value != nil {
			value = fmt.Sprint(opt.Value)
		}
		kept := out[:0]
		for _, e := range out {
			if e.GetOptionValue().Key != opt.Key {
				kept = append(kept, e)
			}
		}
		out = kept
		if value != "" {
			out = append(out, &types.OptionValue{Key: opt.Key, Value: value})
		}
	}
	return out
}

func normalizeExtraConfig(ref types.ManagedObjectReference) {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	simulator.Map.WithLock(vm, func() {
		vm.Config.ExtraConfig = mergeOptions(nil, vm.Config.ExtraConfig)
	})
	simulator.Map.Update(vm, []types.PropertyChange{{Name: "config.extraConfig", Val: vm.Config.ExtraConfig}})
}

func serveGuestinfo(w http.ResponseWriter, r *http.Request) {
	var body struct {
		VM     string            `json:"vm"`
		Values map[string]string `json:"values"`
	}
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil {
		http.Error(w, `want POST {"vm": moid, "values": {"guestinfo.x": "v"}}`, http.StatusBadRequest)
		return
	}
	vm, ok := simulator.Map.Get(types.ManagedObjectReference{Type: "VirtualMachine", Value: body.VM}).(*simulator.VirtualMachine)
	if !ok {
		http.Error(w, "no VM "+body.VM, http.StatusNotFound)
		return
	}
	var in []types.BaseOptionValue
	for k, v := range body.Values {
		if !strings.HasPrefix(k, "guestinfo.") {
			http.Error(w, "only guestinfo.* keys: "+k, http.StatusBadRequest)
			return
		}
		in = append(in, &types.OptionValue{Key: k, Value: v})
	}
	simulator.Map.WithLock(vm, func() {
		vm.Config.ExtraConfig = mergeOptions(vm.Config.ExtraConfig, in)
	})
	simulator.Map.Update(vm, []types.PropertyChange{{Name: "config.extraConfig", Val: vm.Config.ExtraConfig}})
	w.WriteHeader(http.StatusNoContent)
}

func (h *interceptor) updatePortGroup(w http.ResponseWriter, method *simulator.Method, req *types.UpdatePortGroup) {
	ns, ok := simulator.Map.Get(req.This).(*simulator.HostNetworkSystem)
	if !ok {
		h.answerMethodFault(w, method, &types.ManagedObjectNotFound{Obj: req.This}, "")
		return
	}
	var fault types.BaseMethodFault
	simulator.Map.WithLock(ns, func() {
		idx := -1
		for i, pg := range ns.NetworkInfo.Portgroup {
			if pg.Spec.Name == req.PgName {
				idx = i
			}
		}
		if idx < 0 {
			fault = &types.NotFound{}
			return
		}
		old := ns.NetworkInfo.Portgroup[idx].Spec
		if req.Portgrp.Name != old.Name {
			fault = &types.InvalidArgument{InvalidProperty: "portgrp.name"} // renames are not modelled
			return
		}
		found := false
		for _, vs := range ns.NetworkInfo.Vswitch {
			if vs.Name == req.Portgrp.VswitchName {
				found = true
			}
		}
		if !found {
			fault = &types.NotFound{}
			return
		}
		ns.NetworkInfo.Portgroup[idx].Spec = req.Portgrp
		for i := range ns.NetworkInfo.Vswitch {
			vs := &ns.NetworkInfo.Vswitch[i]
			if vs.Name == old.VswitchName && old.VswitchName != req.Portgrp.VswitchName {
				vs.Portgroup = removeString(vs.Portgroup, old.Name)
			}
			if vs.Name == req.Portgrp.VswitchName && !hasString(vs.Portgroup, old.Name) {
				vs.Portgroup = append(vs.Portgroup, old.Name)
			}
		}
	})
	if fault != nil {
		h.answerMethodFault(w, method, fault, "")
		return
	}
	simulator.Map.Update(ns, []types.PropertyChange{{Name: "networkInfo.portgroup", Val: ns.NetworkInfo.Portgroup}})
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">`+
		`<soapenv:Body><UpdatePortGroupResponse xmlns="urn:vim25"></UpdatePortGroupResponse>`+
		`</soapenv:Body></soapenv:Envelope>`)
}

func removeString(list []string, s string) []string {
	out := list[:0]
	for _, e := range list {
		if e != s {
			out = append(out, e)
		}
	}
	return out
}

func hasString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// diskStore keeps each VM's simulated disk contents as a directory (the harness's host state).
type diskStore struct {
	root string
	mu   sync.Mutex
}

var diskSkip = map[string]bool{"runtime.json": true, "control.json": true, "server.log": true, "pid": true,
	"listen.json": true, "guestvars.json": true}

func (d *diskStore) dir(vm types.ManagedObjectReference, snapshot string) string {
	name := vm.Value
	if snapshot != "" {
		name += "@" + snapshot
	}
	return filepath.Join(d.root, name)
}

func (d *diskStore) snapshot(vm types.ManagedObjectReference, snap types.ManagedObjectReference) {
	if d.root == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	src := d.dir(vm, "")
	if _, err := os.Stat(filepath.Join(src, "state.json")); err != nil {
		return // a blank disk: nothing to keep
	}
	if err := copyDir(src, d.dir(vm, snap.Value)); err != nil {
		log.Printf("snapshot %s of %s: %v", snap.Value, vm.Value, err)
	}
}

func (d *diskStore) clone(src types.ManagedObjectReference, snapshot string, clone types.ManagedObjectReference,
	srcName string) {
	if d.root == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	from := d.dir(src, snapshot)
	if _, err := os.Stat(filepath.Join(from, "state.json")); err != nil {
		return
	}
	to := d.dir(clone, "")
	if err := copyDir(from, to); err != nil {
		log.Printf("clone %s of %s: %v", clone.Value, src.Value, err)
		return
	}
	marker, _ := json.Marshal(map[string]string{"source_vm": src.Value, "source": srcName, "snapshot": snapshot})
	_ = os.WriteFile(filepath.Join(to, "clone-of.json"), marker, 0o600)
}

func (d *diskStore) remove(vm types.ManagedObjectReference) {
	if d.root == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_ = os.RemoveAll(d.dir(vm, ""))
	matches, _ := filepath.Glob(filepath.Join(d.root, vm.Value+"@*"))
	for _, m := range matches {
		_ = os.RemoveAll(m)
	}
}

func copyDir(src, dst string) error {
	_ = os.RemoveAll(dst)
	return filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if filepath.Dir(rel) == "." && diskSkip[info.Name()] || rel == "clone-of.json" {
			return nil
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// ---------------------------------------------------------------- the harness's view of the VMs
//
// GET /_labctl/vms?after=N&wait=S answers with every VM as the hypervisor sees it (power state and boot time,
// guestId, firmware, boot order, NICs with their MACs, CD-ROMs with the local file behind each datastore path,
// disks, extraConfig) and the generation, once the generation is past N (or after S seconds). The generation
// moves after every call that is not a read, so the harness wakes at once and then compares whole states: a
// missed or merged change is found at the next answer, and a restarted harness starts from the full state.

func readOnly(name string) bool {
	for _, p := range []string{"Retrieve", "WaitForUpdates", "CheckForUpdates", "Login", "Logout", "CurrentTime",
		"CreateContainerView", "DestroyView", "CreateFilter", "DestroyPropertyFilter", "CancelWaitForUpdates"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func (h *interceptor) bump() {
	h.mu.Lock()
	h.gen++
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

type vmNic struct {
	Key         int32  `json:"key"`
	Type        string `json:"type"`
	Mac         string `json:"mac"`
	AddressType string `json:"addressType"`
	Network     string `json:"network"`
	Connected   bool   `json:"startConnected"`
}

type vmCdrom struct {
	Controller     string `json:"controller"`
	Bus            int32  `json:"bus"`
	Unit           int32  `json:"unit"`
	Iso            string `json:"iso"`
	LocalPath      string `json:"localPath"`
	StartConnected bool   `json:"startConnected"`
}

type vmDisk struct {
	FileName string `json:"fileName"`
	Parent   string `json:"parent"`
	Bus      string `json:"controller"`
}

type vmFacts struct {
	Moid        string            `json:"moid"`
	Name        string            `json:"name"`
	GuestID     string            `json:"guestId"`
	PowerState  string            `json:"powerState"`
	BootTime    string            `json:"bootTime"`
	Firmware    string            `json:"firmware"`
	BootOrder   []string          `json:"bootOrder"`
	Nics        []vmNic           `json:"nics"`
	Cdroms      []vmCdrom         `json:"cdroms"`
	Disks       []vmDisk          `json:"disks"`
	ExtraConfig map[string]string `json:"extraConfig"`
	VmPathName  string            `json:"vmPathName"`
}

func (h *interceptor) serveVMs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var after uint64
	fmt.Sscan(q.Get("after"), &after)
	wait := 10.0
	if q.Get("wait") != "" {
		fmt.Sscan(q.Get("wait"), &wait)
	}
	h.mu.Lock()
	gen, ch := h.gen, h.changed
	h.mu.Unlock()
	if gen <= after && q.Get("after") != "" {
		select {
		case <-ch:
		case <-time.After(time.Duration(wait * float64(time.Second))):
		case <-r.Context().Done():
			return
		}
		h.mu.Lock()
		gen = h.gen
		h.mu.Unlock()
	}
	dsURL := map[string]string{}
	for _, e := range simulator.Map.All("Datastore") {
		if ds, ok := e.(*simulator.Datastore); ok {
			simulator.Map.WithLock(ds, func() {
				dsURL[ds.Name] = ds.Info.GetDatastoreInfo().Url
			})
		}
	}
	out := []vmFacts{}
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm, ok := e.(*simulator.VirtualMachine)
		if !ok {
			continue
		}
		simulator.Map.WithLock(vm, func() { out = append(out, factsOf(vm, dsURL)) })
	}
	data, _ := json.Marshal(map[string]interface{}{"generation": gen, "vms": out})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

func localPath(dsPath string, dsURL map[string]string) string {
	var p object.DatastorePath
	if !p.FromString(dsPath) {
		return ""
	}
	base, ok := dsURL[p.Datastore]
	if !ok {
		return ""
	}
	return filepath.Join(base, filepath.FromSlash(p.Path))
}

func factsOf(vm *simulator.VirtualMachine, dsURL map[string]string) vmFacts {
	f := vmFacts{Moid: vm.Self.Value, Name: vm.Name, ExtraConfig: map[string]string{}, BootOrder: []string{},
		Nics: []vmNic{}, Cdroms: []vmCdrom{}, Disks: []vmDisk{}}
	f.PowerState = string(vm.Runtime.PowerState)
	if vm.Runtime.BootTime != nil {
		f.BootTime = vm.Runtime.BootTime.UTC().Format(time.RFC3339Nano)
	}
	if vm.Config == nil {
		return f
	}
	f.GuestID = vm.Config.GuestId
	f.Firmware = vm.Config.Firmware
	if vm.Config.Files.VmPathName != "" {
		f.VmPathName = vm.Config.Files.VmPathName
	}
	for _, o := range vm.Config.ExtraConfig {
		opt := o.GetOptionValue()
		f.ExtraConfig[opt.Key] = fmt.Sprint(opt.Value)
	}
	if bo := vm.Config.BootOptions; bo != nil {
		for _, d := range bo.BootOrder {
			switch d.(type) {
			case *types.VirtualMachineBootOptionsBootableDiskDevice:
				f.BootOrder = append(f.BootOrder, "hdd")
			case *types.VirtualMachineBootOptionsBootableCdromDevice:
				f.BootOrder = append(f.BootOrder, "cdrom")
			case *types.VirtualMachineBootOptionsBootableEthernetDevice:
				f.BootOrder = append(f.BootOrder, "ethernet")
			case *types.VirtualMachineBootOptionsBootableFloppyDevice:
				f.BootOrder = append(f.BootOrder, "floppy")
			}
		}
	}
	devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
	for _, d := range vm.Config.Hardware.Device {
		switch dev := d.(type) {
		case types.BaseVirtualEthernetCard:
			card := dev.GetVirtualEthernetCard()
			nic := vmNic{Key: card.Key, Type: reflect.TypeOf(d).Elem().Name(), Mac: strings.ToLower(card.MacAddress),
				AddressType: card.AddressType}
			if c := card.Connectable; c != nil {
				nic.Connected = c.StartConnected
			}
			if b, ok := card.Backing.(*types.VirtualEthernetCardNetworkBackingInfo); ok {
				nic.Network = b.DeviceName
			}
			if b, ok := card.Backing.(*types.VirtualEthernetCardDistributedVirtualPortBackingInfo); ok {
				nic.Network = b.Port.PortgroupKey
			}
			f.Nics = append(f.Nics, nic)
		case *types.VirtualCdrom:
			cd := vmCdrom{Unit: -1}
			if dev.UnitNumber != nil {
				cd.Unit = *dev.UnitNumber
			}
			switch c := devices.FindByKey(dev.ControllerKey).(type) {
			case *types.VirtualIDEController:
				cd.Controller, cd.Bus = "ide", c.BusNumber
			case types.BaseVirtualSATAController:
				cd.Controller, cd.Bus = "sata", c.GetVirtualSATAController().BusNumber
			}
			if b, ok := dev.Backing.(*types.VirtualCdromIsoBackingInfo); ok {
				cd.Iso = b.FileName
				cd.LocalPath = localPath(b.FileName, dsURL)
			}
			if c := dev.Connectable; c != nil {
				cd.StartConnected = c.StartConnected
			}
			f.Cdroms = append(f.Cdroms, cd)
		case *types.VirtualDisk:
			disk := vmDisk{}
			if b, ok := dev.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
				disk.FileName = b.FileName
				if b.Parent != nil {
					disk.Parent = b.Parent.FileName
				}
			}
			f.Disks = append(f.Disks, disk)
		}
	}
	return f
}

// renameFirst gives the model's first object of `kind` the name a topology's target names (as if the physical
// vCenter had been set up with it).
func renameFirst(kind, name string) {
	if name == "" {
		return
	}
	all := simulator.Map.All(kind)
	if len(all) == 0 {
		log.Fatalf("-%s: the model has no %s", strings.ToLower(kind), kind)
	}
	first := all[0]
	for _, e := range all {
		if e.Reference().Value < first.Reference().Value {
			first = e
		}
	}
	simulator.Map.WithLock(first, func() {
		first.Entity().Name = name
		if ds, ok := first.(*simulator.Datastore); ok {
			ds.Summary.Name = name
			ds.Info.GetDatastoreInfo().Name = name
		}
	})
	simulator.Map.Update(first, []types.PropertyChange{{Name: "name", Val: name}})
}

// fixEsxDatacenter: in -esx mode govmomi 0.24.2's ha-datacenter lists the datastore of its static fixture
// (57089c25-85e3ccd4-17b6-000c29d0beb3), which the model never creates — reading it is ManagedObjectNotFound.
// A real ESX host's ha-datacenter lists the datastores and networks it has.
func fixEsxDatacenter() {
	var ds, nets []types.ManagedObjectReference
	for _, e := range simulator.Map.All("Datastore") {
		ds = append(ds, e.Reference())
	}
	for _, e := range simulator.Map.All("Network") {
		nets = append(nets, e.Reference())
	}
	for _, e := range simulator.Map.All("Datacenter") {
		dc, ok := e.(*simulator.Datacenter)
		if !ok {
			continue
		}
		simulator.Map.WithLock(dc, func() {
			dc.Datastore = ds
			dc.Network = nets
		})
		simulator.Map.Update(dc, []types.PropertyChange{{Name: "datastore", Val: ds}, {Name: "network", Val: nets}})
	}
}

// addPortgroups creates standard portgroups on vSwitch0 of every host, as on a vSphere the user set up before.
func addPortgroups(u *url.URL, names []string) error {
	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		return err
	}
	defer c.Logout(ctx)
	for _, e := range simulator.Map.All("HostSystem") {
		host := object.NewHostSystem(c.Client, e.Reference())
		ns, err := host.ConfigManager().NetworkSystem(ctx)
		if err != nil {
			return err
		}
		for _, name := range names {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			spec := types.HostPortGroupSpec{Name: name, VswitchName: "vSwitch0", Policy: types.HostNetworkPolicy{}}
			if err := ns.AddPortGroup(ctx, spec); err != nil && !strings.Contains(err.Error(), "DuplicateName") &&
				!strings.Contains(err.Error(), "already exists") {
				return fmt.Errorf("portgroup %s on %s: %v", name, host.Reference().Value, err)
			}
		}
	}
	return nil
}
