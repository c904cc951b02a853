"""panet_mm.engine.distributed.finish_distributed: the process group a run started is destroyed at its end."""
import socket

import torch.distributed as dist

from panet_mm.engine.distributed import finish_distributed


def test_finish_distributed_destroys_the_group_and_is_a_no_op_without_one():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)
    assert dist.is_initialized()
    finish_distributed()
    assert not dist.is_initialized()
    finish_distributed()  # nothing to finish: no error
    assert not dist.is_initialized()
