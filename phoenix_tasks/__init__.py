"""Phoenix: Docker Swarm on Proxmox VMs, as Invoke/Fabric task flows."""

__version__ = "0.1.0"
