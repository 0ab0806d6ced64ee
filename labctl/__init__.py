"""labctl: build nested VMware ESX/ESXi labs inside VMware Workstation from one YAML topology."""

__version__ = "0.1.0"
