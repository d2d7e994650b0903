"""kubesim's kubelet as a node agent for a real Kubernetes API server (over a kubeconfig).

NodeAgent (agent.py) registers Nodes with Leases, runs the pods the server's
scheduler binds to them with kubesim's kubelet, and provisions hostPath
volumes for claims of the `kubesim-local` StorageClass. AgentError carries
a message for a person (bad kubeconfig, unreachable server, 401, 403).
"""

from kubesim.nodeagent.agent import AgentError, NodeAgent

__all__ = ["AgentError", "NodeAgent"]
