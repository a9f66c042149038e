"""Supernet training data-parallel over several processes with torch.distributed: gloo on CPUs, nccl on GPUs.

    # on this machine, from Python (spawns the workers, returns when they are done):
    state = train_supernet_workers(net, x, y, TrainConfig(epochs=5), workers=2, checkpoint="run/supernet.pt")
    # on one or more machines, with torchrun (the built-in digits, or an .npz as `mcuforge search` takes):
    python -m torch.distributed.run --nproc_per_node 2 -m mcuforge.nas.ddp_train --data digits \\
        --width 0.2 --resolution 32 --epochs 5 --batch-size 32 --out run/       # add --resume after a kill
    # in a process group of your own (every rank calls it with the same arguments):
    state = train_supernet_ddp(net, x, y, config, checkpoint="run/supernet.pt")

The same training as nas.train.train_supernet, with every global batch split among the workers:
- data: every worker takes the same batches (drawn from (seed, epoch)); worker r of W takes rows
  [r*B/W, (r+1)*B/W) of each batch of B (the global batch is unchanged; B must be a multiple of W);
- subnets: the sandwich rule's random subnets of step s are drawn from (seed, s), so all workers train the
  same subnets at the same step;
- gradients: after the step's passes (largest, random subnets, smallest: one graph alive at a time, as in
  train_supernet), one all-reduce of all gradients in one flat buffer, divided by W (with the largest
  subnet's loss in the same buffer, for the log), then the same SGD step everywhere; the workers stay
  identical. Why not the DistributedDataParallel wrapper: a step is several forward/backward passes through
  different subgraphs (the smallest subnet leaves deep blocks unused), which DDP only handles with no_sync
  and find_unused_parameters; one explicit all-reduce per step does the same reduction with one collective;
- batch norm: each worker normalises with the statistics of its own B/W rows (what DDP does without
  SyncBatchNorm: "ghost" batches). SyncBatchNorm is not used: it would cost two collectives per batch-norm
  layer per pass (about 400 per step here) and the search recalibrates every subnet's statistics before
  scoring it (subnet_accuracy) anyway. The running statistics, which differ per worker, are averaged at
  every checkpoint and at the end (an exponential average is linear, so this equals averaging once at the
  end, and a resumed run continues exactly);
- checkpoints: rank 0 writes them (the format of train_supernet's: either can resume the other's); on
  --resume rank 0 reads the checkpoint and broadcasts it, so nodes need no shared disk.
Proved by the tests (tests/test_nas_ddp.py): with 2 workers, the weights after every step equal, bit for
bit, a single process that runs each step's two halves separately and averages their gradients; one worker
equals train_supernet bit for bit; a run killed and resumed ends with the same weights as an unbroken one.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import socket
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from ..errors import UsageError
from .supernet import Supernet
from .train import (TrainConfig, TrainState, _save, as_tensors, learning_rate, make_optimizer, read_checkpoint,
                    sandwich_step, schedule, step_archs, step_batches)


def _all_reduce_mean(tensors: list[torch.Tensor], world: int) -> None:
    """Every tensor replaced by its mean over the workers: one collective for all of them."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat.div_(world)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def _average_bn_statistics(net: Supernet, world: int) -> None:
    _all_reduce_mean([b for b in net.buffers() if b.is_floating_point()], world)


def _broadcast_weights(net: Supernet) -> None:
    """Rank 0's parameters and buffers on every rank (as DDP's constructor does)."""
    state = list(net.state_dict().values())
    flat = torch.cat([t.reshape(-1).to(torch.float64) for t in state])  # float64 holds the int counters exactly
    dist.broadcast(flat, 0)
    offset = 0
    for t in state:
        t.copy_(flat[offset:offset + t.numel()].view_as(t).to(t.dtype))
        offset += t.numel()


def _sandwich_only(config: TrainConfig) -> None:
    """Refuses, in one line, a training method other than the sandwich rule (the only one split among workers)."""
    if config.method != "sandwich":
        raise UsageError(f"training method {config.method!r} runs on one process: train with the sandwich rule, "
                         "or with one worker")


def _resume_state(path: Path | None, config: TrainConfig, rank: int) -> dict:
    """Rank 0 reads the checkpoint and broadcasts it (or the error, so that every rank stops with it)."""
    payload: dict | None = None
    if rank == 0:
        try:
            if path is None or not path.exists():
                raise UsageError("nothing to resume: no checkpoint yet; start without --resume")
            payload = read_checkpoint(path, config)
        except UsageError as e:
            payload = {"error": str(e)}
    box = [payload]
    dist.broadcast_object_list(box, src=0)
    payload = box[0]
    if "error" in payload:
        raise UsageError(payload["error"])
    return payload


def train_supernet_ddp(net: Supernet, x: np.ndarray, y: np.ndarray, config: TrainConfig = TrainConfig(), *,
                       checkpoint: str | os.PathLike | None = None, resume: bool = False,
                       on_step: Callable[[int, float], None] | None = None) -> TrainState:
    """train_supernet on every rank of the current process group (see the module docstring); every rank
    passes the whole x and y. On nccl the net is moved to the current CUDA device. `on_step(step, loss)`
    gets the largest subnet's loss averaged over the workers."""
    if not dist.is_available() or not dist.is_initialized():
        raise UsageError("train_supernet_ddp runs in a torch.distributed process group: launch it with torchrun, "
                         "or call train_supernet_workers")
    rank, world = dist.get_rank(), dist.get_world_size()
    _sandwich_only(config)
    if config.batch_size % world:
        raise UsageError(f"a batch of {config.batch_size} does not split into {world} equal parts: give a batch "
                         f"size that is a multiple of {world}")
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    net.to(device)
    n = len(x)
    _, steps = schedule(n, config)
    shard = config.batch_size // world
    optimizer = make_optimizer(net, config)
    path = Path(checkpoint) if checkpoint is not None else None
    start = 0
    if resume:
        saved = _resume_state(path, config, rank)
        net.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        start = int(saved["step"])
    space = net.space
    _broadcast_weights(net)
    xt, yt = as_tensors(x, y)
    net.train()
    loss_value = math.nan
    step = start
    for step, idx in step_batches(n, config, start):
        mine = idx[rank * shard:(rank + 1) * shard]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step, steps)
        optimizer.zero_grad(set_to_none=True)
        loss = sandwich_step(net, xt[mine].to(device), yt[mine].to(device), step_archs(space, config, step))
        reduced = [p.grad for p in net.parameters() if p.grad is not None] + [loss.reshape(1)]
        _all_reduce_mean(reduced, world)  # the same parameters have gradients on every rank
        loss_value = float(reduced[-1])
        optimizer.step()
        step += 1
        if step % config.checkpoint_every == 0 or step == steps:
            _average_bn_statistics(net, world)
            if rank == 0 and path is not None:
                _save(path, net, optimizer, step, config)
        if on_step is not None:
            on_step(step, loss_value)
    net.set_active(space.largest())
    return TrainState(step, steps, loss_value, start)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, threads: int, device: str, space, state: dict, folder: str,
            config: TrainConfig, checkpoint: str | None, resume: bool, queue) -> None:
    torch.set_num_threads(threads)
    cuda = device == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        net = Supernet(space)
        net.load_state_dict(state)
        x, y = np.load(Path(folder) / "x.npy"), np.load(Path(folder) / "y.npy")
        report = (lambda s, loss: queue.put(("step", s, loss))) if rank == 0 else None
        result = train_supernet_ddp(net, x, y, config, checkpoint=checkpoint, resume=resume, on_step=report)
        if rank == 0:
            torch.save({"model": {k: v.cpu() for k, v in net.state_dict().items()}, "state": asdict(result)},
                       Path(folder) / "result.pt")
    finally:
        dist.destroy_process_group()


def _drain(queue, on_step: Callable[[int, float], None] | None) -> None:
    while not queue.empty():
        _, step, loss = queue.get()
        if on_step is not None:
            on_step(step, loss)


def train_supernet_workers(net: Supernet, x: np.ndarray, y: np.ndarray, config: TrainConfig = TrainConfig(), *,
                           workers: int = 2, checkpoint: str | os.PathLike | None = None, resume: bool = False,
                           on_step: Callable[[int, float], None] | None = None, threads: int | None = None,
                           device: str = "cpu") -> TrainState:
    """train_supernet on `workers` processes of this machine (train_supernet_ddp in each; gloo, or nccl with
    device="cuda", one GPU per worker), starting from net's weights; net gets the trained weights.
    `threads`: torch threads per worker (default: the cores shared out). `on_step(step, loss)` is called here,
    in this process, as rank 0 reports its steps (an exception from it stops the workers, as a kill would)."""
    import torch.multiprocessing as mp

    if workers < 1:
        raise UsageError(f"--workers {workers}: give at least 1")
    if device not in ("cpu", "cuda"):
        raise UsageError(f"device {device!r}: give 'cpu' or 'cuda'")
    if device == "cuda" and torch.cuda.device_count() < workers:
        raise UsageError(f"{workers} workers on cuda need {workers} GPUs; {torch.cuda.device_count()} found")
    schedule(len(x), config)
    _sandwich_only(config)
    if config.batch_size % workers:
        raise UsageError(f"a batch of {config.batch_size} does not split into {workers} equal parts: give a batch "
                         f"size that is a multiple of {workers}")
    path = Path(checkpoint) if checkpoint is not None else None
    if resume:  # refused here, in one line, rather than in every worker
        if path is None or not path.exists():
            raise UsageError("nothing to resume: no checkpoint yet; start without --resume")
        read_checkpoint(path, config)
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    with tempfile.TemporaryDirectory(prefix="mcuforge-ddp-") as folder:
        np.save(Path(folder) / "x.npy", np.ascontiguousarray(x, np.float32))
        np.save(Path(folder) / "y.npy", np.asarray(y, np.int64))
        queue = mp.get_context("spawn").SimpleQueue()
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        args = (workers, _free_port(), threads, device, net.space, state, folder, config,
                str(path) if path is not None else None, resume, queue)
        context = mp.start_processes(_worker, args=args, nprocs=workers, join=False, start_method="spawn")
        try:
            while not context.join(timeout=0.05):
                _drain(queue, on_step)
            _drain(queue, on_step)
        except mp.ProcessRaisedException as e:
            found = re.findall(r"mcuforge\.errors\.UsageError: (.*)", str(e))
            if found:
                raise UsageError(found[-1]) from None
            raise
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.terminate()
            for process in context.processes:
                process.join()
        saved = torch.load(Path(folder) / "result.pt", map_location="cpu", weights_only=False)
    net.load_state_dict(saved["model"])
    net.set_active(net.space.largest())
    return TrainState(**saved["state"])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m torch.distributed.run --nproc_per_node N -m mcuforge.nas.ddp_train",
                                description="Train a search space's supernet data-parallel (one process per "
                                            "worker); rank 0 writes OUT/supernet.pt and OUT/ddp_train.log.")
    p.add_argument("--data", default="digits", help="'digits' (built in) or an .npz with x_train, y_train, ...")
    p.add_argument("--signal", action="store_true", help="the data are 1-D signals (N, channels, length)")
    p.add_argument("--width", type=float, required=True)
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="global batch (all workers)")
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--subnets", type=int, default=TrainConfig.subnets)
    p.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train", type=int, default=None, help="train on at most this many samples")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--cpu", action="store_true", help="gloo on CPUs even where GPUs are present")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true")
    return p


def _init_group(cpu: bool) -> None:
    cuda = not cpu and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if "RANK" in os.environ:  # torchrun (or any launcher that sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)
        dist.init_process_group("nccl" if cuda else "gloo")
    else:  # started alone: a group of one
        dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0,
                                world_size=1)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    _init_group(args.cpu)
    rank = dist.get_rank()
    try:
        from .mcunet import SearchSpace
        from .search_data import load_search_data, resize

        data = load_search_data(args.data, args.signal)
        order = np.random.default_rng(args.seed).permutation(len(data.x_train))  # the split `mcuforge search`
        if args.max_train:                                                        # makes with this seed
            order = order[:args.max_train]
        train = order[max(data.classes, len(order) // 10):]
        try:
            space = SearchSpace(args.width, args.resolution, data.x_train.shape[1], data.classes, data.signal)
        except ValueError as e:
            raise UsageError(str(e)) from None
        x = resize(data.x_train[train], space.resolution, data.signal)
        out = Path(args.out)
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, subnets=args.subnets,
                             seed=args.seed, checkpoint_every=args.checkpoint_every)
        torch.manual_seed(args.seed)
        net = Supernet(space)
        t0 = time.perf_counter()
        log = open(out / "ddp_train.log", "a") if rank == 0 else None

        def progress(step: int, loss: float) -> None:
            if log is not None:
                log.write(f"step {step}: loss {loss:.4f} ({time.perf_counter() - t0:.1f} s)\n")
                log.flush()

        try:
            state = train_supernet_ddp(net, x, data.y_train[train], config, checkpoint=out / "supernet.pt",
                                       resume=args.resume, on_step=progress)
        finally:
            if log is not None:
                log.close()
        if rank == 0:
            resumed = f", resumed after step {state.resumed_from}" if state.resumed_from else ""
            print(f"{space.name}: {state.steps} steps on {dist.get_world_size()} workers{resumed} "
                  f"({time.perf_counter() - t0:.1f} s), loss {state.loss:.4f}; wrote {out / 'supernet.pt'}")
        return 0
    except UsageError as e:
        if rank == 0:
            print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    finally:
        dist.destroy_process_group()


__all__ = ["main", "train_supernet_ddp", "train_supernet_workers"]

if __name__ == "__main__":
    sys.exit(main())
