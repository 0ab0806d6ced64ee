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
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" `+
		`xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`+
		`<soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>%s</faultstring>`+
		`<detail><%sFault xmlns="urn:vim25" xsi:type="%s"></%sFault></detail></soapenv:Fault>`+
		`</soapenv:Body></soapenv:Envelope>`, html.EscapeString(msg), rule.Fault, rule.Fault, rule.Fault)
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
	model.Datacenter = *dc
	model.Cluster = *cluster
	model.ClusterHost = *clusterHosts
	model.Host = *standalone
	model.Machine = *vms
	if *apiVersion != "" {
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

	model.Service.TLS = nil
	if *useTLS {
		model.Service.TLS = new(tls.Config)
	}
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, password)}
	server := model.Service.NewServer()
	mux := server.Config.Handler
	// Swapped before the URL is printed, so before any client can connect.
	server.Config.Handler = &interceptor{next: mux, sdkPath: server.URL.Path, calls: map[string]int{}}

	fmt.Println(server.URL.String())
	_ = os.Stdout.Sync()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	server.Close()
	model.Remove()
}
