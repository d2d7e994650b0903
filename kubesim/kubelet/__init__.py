"""kubesim's simulated kubelet: runs pods from the store as local processes.

SimKubelet (node.py) implements the Kubelet and PodUsage seams of
kubesim.contracts; KubeletConfig (config.py) is its typed settings. It only
talks to cluster state through the ObjectStore protocol and never imports
the API server.
"""

from kubesim.kubelet.config import KubeletConfig
from kubesim.kubelet.node import SimKubelet
from kubesim.kubelet.scheduler import NodeCapacity

__all__ = ["KubeletConfig", "NodeCapacity", "SimKubelet"]
