"""Benchmark loaders that misbehave on purpose (and one quick honest one), as a plugin file's source: a test writes
FAILING_LOADERS into a folder passed as --plugins-dir (or $HUBMIRROR_PLUGINS_DIR on a cluster node), and a model
whose repo holds `<name>.me` is loaded by the loader of that name: `hog` (asks for 8 GiB of address space), `killer`
(kills its worker), `crasher` (segfaults), `sleeper` (hangs), `counter` (sums ones, fast)."""

FAILING_LOADERS = '''
import os, signal, time
from hubmirror.api import hookimpl, Loaded, Loader

class ByFile(Loader):
    priority = 100
    def matches(self, model, paths):
        return self.name + ".me" in paths

class Hog(ByFile):
    name = "hog"
    def load(self, directory, model, device, dtype):
        import torch
        block = torch.empty(2 * 2**30)  # 8 GiB of address space, never touched
        return Loaded(lambda x: None, lambda b: None, block.numel(), "8 GiB")

class WorkerKiller(ByFile):
    name = "killer"
    def load(self, directory, model, device, dtype):
        os.kill(os.getppid(), signal.SIGKILL)  # the zygote, in fork isolation
        time.sleep(30)

class Crasher(ByFile):
    name = "crasher"
    def load(self, directory, model, device, dtype):
        os.kill(os.getpid(), signal.SIGSEGV)

class Sleeper(ByFile):
    name = "sleeper"
    def load(self, directory, model, device, dtype):
        time.sleep(60)

class Counter(ByFile):
    name = "counter"
    def load(self, directory, model, device, dtype):
        import torch
        return Loaded(lambda x: x.sum(), lambda b: torch.ones(b, 8), 8, "8 values")

@hookimpl
def register_loaders(register):
    for loader in (Hog(), WorkerKiller(), Crasher(), Sleeper(), Counter()):
        register(loader)
'''
