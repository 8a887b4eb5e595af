"""Checkpoints: atomic, integrity-checked, and loadable without executing pickled code.

File layout: an 8-byte magic, the SHA-256 of the payload, then the payload, which is a
`torch.save` archive of plain containers, numbers, strings and tensors only. Loading checks
the magic and the digest first (a truncated or tampered file is refused before any parsing)
and then reads the payload with `torch.load(weights_only=True)`, which cannot run code.
Writing goes to a temporary file in the same directory, fsync, then `os.replace`, so a
crash never leaves a half-written checkpoint under the real name.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import random
import stat
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError
from .validate import check_int

MAGIC = b"NPLCKPT1"
# A GraphNet is fully described by these tensors and its constructor arguments; a URN adds
# its settings (in the config) and its neuron positions, and is restored with URN.from_graph.
_GRAPH_TENSORS = ("weight", "bias", "neuron_alive", "neuron_uid", "edge_alive", "edge_src", "edge_dst", "edge_uid",
                  "neuron_activation")
_GRAPH_ARGS = ("n_in", "n_out", "activation", "output_activation", "mode", "steps", "clamp_inputs", "kernel", "seed")


def _blocking_file(path: Path) -> Path | None:
    """The first existing non-directory among path's parents (what makes mkdir fail)."""
    return next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)


def make_output_dir(path, flag: str) -> None:
    """mkdir -p `path` for the CLI's outputs; a path that cannot be a directory is a ConfigError."""
    path = Path(path)
    blocking = path if path.exists() and not path.is_dir() else _blocking_file(path)
    if blocking is not None:
        raise ConfigError(f"{flag} {str(path)!r}: {str(blocking)!r} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{flag} {str(path)!r} cannot be created: {exc.strerror or exc}") from None


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the new one."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"cannot write {str(path)!r}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        blocking = _blocking_file(path)
        reason = f"{str(blocking)!r} is a file, not a directory" if blocking else exc.strerror or exc
        raise CheckpointError(f"cannot write {str(path)!r}: {reason}") from None
    try:
        # mkstemp makes the file private (0600); the result gets the mode a plain open() would
        # give it (the old file's, else 0666 less the umask), so others can read a results folder
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:  # no old file
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def rng_state() -> dict:
    """The global RNG states (torch, numpy, random) as plain, weights-only-safe values."""
    return {"torch": torch.get_rng_state(), "python": repr(random.getstate()), "numpy": numpy_rng_state()}


def numpy_rng_state() -> dict:
    """numpy's global generator state as plain values."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def set_numpy_rng_state(n: dict) -> None:
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))


def set_rng_state(state: dict) -> None:
    import ast
    torch.set_rng_state(state["torch"])
    set_numpy_rng_state(state["numpy"])
    random.setstate(ast.literal_eval(state["python"]))


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise CheckpointError(f"a checkpoint path must be a str or os.PathLike, not {path!r}")
    return path


def save(path, net, optimizer=None, rule=None, step: int = 0, extra: dict | None = None) -> None:
    """Write network topology and weights, optimizer and rule state, RNG state and step.

    `net=None` stores only the rest (used for students that are not GraphNets)."""
    from .graph import GraphNet
    _check_path(path)
    if net is not None and not isinstance(net, GraphNet):
        raise CheckpointError(f"save() expects a GraphNet (or None), got {type(net).__name__}")
    step = check_int(step, "step", error=CheckpointError)
    if rule is not None and not callable(getattr(rule, "state_dict", None)):
        raise CheckpointError(f"rule={type(rule).__name__} has no state_dict() to save")
    payload = {
        "format": 1,
        "net": None if net is None else {
            "class": type(net).__name__, "config": net.config(),
            "live": _live_slots(net), "capacity": net.capacity, "edge_capacity": net.edge_capacity,
            "next_uid": net.next_uid, "positions": _positions(net)},
        "optimizer": _optimizer_state(net, optimizer) if net is not None else None,
        "rule": rule.state_dict() if rule is not None else None,
        "rule_class": type(rule).__name__ if rule is not None else None,
        "rng": rng_state(),
        "step": int(step),
        "extra": extra or {},
    }
    payload = _plain(payload, "checkpoint")
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    atomic_write_bytes(path, MAGIC + hashlib.sha256(body).digest() + body)


def _plain(value, where: str):
    """`value` as what weights-only loading reads back: containers, str, numbers, None and
    tensors. numpy scalars become Python numbers, numpy arrays tensors, paths strings; anything
    else is refused here, so a save that succeeds always loads."""
    if isinstance(value, np.generic):  # before the Python types: np.float64 is a float
        return value.item()
    if value is None or isinstance(value, bool | int | float | str | torch.Tensor | torch.dtype):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise CheckpointError(f"cannot save {where}: an object array is not plain data")
        return torch.from_numpy(value.copy())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {_plain_key(k, where): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise CheckpointError(f"cannot save {where}: a value of type {type(value).__name__} is not plain data "
                          "(use numbers, strings, lists, dicts, arrays or tensors)")


def _plain_key(key, where: str):
    if isinstance(key, np.generic):
        key = key.item()
    if key is None or isinstance(key, bool | int | float | str):
        return key
    raise CheckpointError(f"cannot save {where}: a key of type {type(key).__name__} is not plain data "
                          "(use numbers or strings as keys)")


def _optimizer_state(net, optimizer):
    """Optimizer state keyed by parameter *name*, so it survives the net's reconstruction."""
    if optimizer is None:
        return None
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise CheckpointError(f"optimizer={type(optimizer).__name__} is not a torch.optim.Optimizer")
    names = {id(p): n for n, p in net.named_parameters()}
    if any(id(p) not in names for g in optimizer.param_groups for p in g["params"]):
        raise CheckpointError("the optimizer holds parameters that are not this network's "
                              "(build it on net.parameters(), and pass it to apply_edits)")
    groups = []
    for g in optimizer.param_groups:
        groups.append({"params": [names[id(p)] for p in g["params"]],
                       "options": {k: v for k, v in g.items() if k != "params"}})
    state = {names[id(p)]: dict(s) for p, s in optimizer.state.items() if id(p) in names}
    return {"class": type(optimizer).__name__, "groups": groups, "state": state}


def load(path, map_location="cpu") -> dict:
    """Read a checkpoint: {"net", "optimizer", "rule", "rng", "step", "extra"}.

    `net` is the rebuilt GraphNet (a URN comes back as a URN). `optimizer` is a torch state
    dict: `opt = torch.optim.Adam(state["net"].parameters()); opt.load_state_dict(state["optimizer"])`
    (or `restore_optimizer(state, opt)`, which matches parameters by name). `rule` is the
    rule's state dict. `optimizer_state` / `rule_state` are the same under their older names.
    """
    path = Path(_check_path(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {exc.strerror}") from exc
    header = len(MAGIC) + 32
    if len(data) < header or data[: len(MAGIC)] != MAGIC:
        raise CheckpointError(f"{str(path)!r} is not a neuroplastic checkpoint (bad header)")
    if hashlib.sha256(data[header:]).digest() != data[len(MAGIC):header]:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupted (checksum mismatch)")
    try:  # everything read from the payload: a well-formed file of another layout fails here too
        payload = torch.load(io.BytesIO(data[header:]), map_location=map_location, weights_only=True)
        net = _rebuild_net(payload["net"]) if payload["net"] is not None else None
        state = {"net": net, "optimizer": _torch_optimizer_state(payload["optimizer"]), "rule": payload["rule"],
                 "optimizer_state": payload["optimizer"], "rule_state": payload["rule"],
                 "rule_class": payload.get("rule_class"),
                 "rng": payload["rng"], "step": payload["step"], "extra": payload["extra"]}
        if isinstance(state["step"], bool) or not isinstance(state["step"], int):  # save() writes an int
            raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: its step {state['step']!r} is not "
                                  "an integer")
    except CheckpointError:
        raise
    except Exception as exc:
        if isinstance(exc, pickle.UnpicklingError):  # torch's message is a page of advice
            reason = "it holds objects that are not plain data (npl.save never writes those)"
        else:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: {reason}") from exc
    return state


def _torch_optimizer_state(saved: dict | None) -> dict | None:
    """The saved optimizer state as `torch.optim.Optimizer.state_dict()` lays it out, for an
    optimizer built on `state["net"].parameters()` (parameters are numbered in group order)."""
    if saved is None:
        return None
    index: dict[str, int] = {}
    groups = []
    for group in saved["groups"]:
        groups.append({**group["options"], "params": [index.setdefault(n, len(index)) for n in group["params"]]})
    return {"state": {index[n]: s for n, s in saved["state"].items() if n in index}, "param_groups": groups}


def _live_slots(net) -> dict:
    """Only the live slots: a grown or compacted net is mostly spare capacity."""
    edges = net.edge_alive.nonzero().squeeze(1)
    neurons = net.neuron_alive.nonzero().squeeze(1)
    return {"edge_slot": edges.cpu(), "weight": net.weight.detach()[edges].cpu(),
            "edge_src": net.edge_src[edges].cpu(), "edge_dst": net.edge_dst[edges].cpu(),
            "edge_uid": net.edge_uid[edges].cpu() if net.tracks_edge_owners else torch.zeros(0, dtype=torch.int32),
            "neuron": neurons.cpu(),
            "bias": net.bias.detach()[neurons].cpu(), "neuron_uid": net.neuron_uid[neurons].cpu(),
            # per-neuron activation codes, only for a net that has them
            "activation": (net.neuron_activation[neurons].cpu() if net.mixed_activations
                           else torch.zeros(0, dtype=torch.int8))}


def _positions(net):
    positions = getattr(net, "positions", None)
    return None if positions is None else torch.from_numpy(np.asarray(positions, dtype=np.float32))


def _rebuild_net(saved: dict):
    from .graph import GraphNet
    cfg = {k: v for k, v in saved["config"].items() if k in _GRAPH_ARGS}
    if "live" not in saved:  # files written before live-slot storage: full tensors
        tensors = {k: v for k, v in saved["tensors"].items() if k in _GRAPH_TENSORS}
        dtype = tensors["weight"].dtype
    else:
        live = saved["live"]
        n_cap, e_cap = int(saved["capacity"]), int(saved["edge_capacity"])
        if len(live["neuron"]) and int(live["neuron"].max()) >= n_cap or \
                len(live["edge_slot"]) and int(live["edge_slot"].max()) >= e_cap:
            raise CheckpointError("checkpoint capacities are inconsistent; the file was not written by save()")
        dtype = live["weight"].dtype
        e, n = live["edge_slot"].long(), live["neuron"].long()
        tensors = {"weight": torch.zeros(e_cap, dtype=dtype).index_put_((e,), live["weight"]),
                   "bias": torch.zeros(n_cap, dtype=dtype).index_put_((n,), live["bias"]),
                   "neuron_alive": torch.zeros(n_cap, dtype=torch.bool).index_put_((n,), torch.tensor(True))}
        owners = len(live["edge_uid"]) == len(e)  # saved from a net that tracks edge owners
        if not owners:
            tensors["edge_uid"] = torch.zeros(0, dtype=torch.long)
        for name, slots, size in (("edge_src", e, e_cap), ("edge_dst", e, e_cap), ("edge_uid", e, e_cap),
                                  ("neuron_uid", n, n_cap)):
            if name == "edge_uid" and not owners:
                continue
            fill = 0 if name == "edge_dst" else -1  # a source of -1 marks a free edge slot
            tensors[name] = torch.full((size,), fill, dtype=torch.long).index_put_((slots,), live[name].long())
        codes = live.get("activation")  # absent in files written before per-neuron activations
        if torch.is_tensor(codes) and codes.numel():
            if codes.shape != n.shape:
                raise CheckpointError("the checkpoint's per-neuron activations do not fit its neurons")
            # in the saved dtype: load_state_dict checks the codes before its int8 buffer takes them
            tensors["neuron_activation"] = torch.zeros(n_cap, dtype=codes.dtype).index_put_((n,), codes)
    net = GraphNet(connect="none", dtype=dtype, **cfg)
    net.load_state_dict({**tensors, "_extra_state": {"next_uid": int(saved["next_uid"])}})
    if saved["class"] != "GraphNet":
        cls = GraphNet.registered_class(saved["class"])
        positions = saved.get("positions")
        net = cls.from_saved(net, saved["config"], None if positions is None else positions.numpy())
    return net


def restore_optimizer(state: dict, optimizer) -> None:
    """Load the optimizer state saved by `save` into `optimizer` (built on state['net'])."""
    saved = state["optimizer_state"]
    if saved is None:
        raise CheckpointError("the checkpoint holds no optimizer state")
    if saved["class"] != type(optimizer).__name__:
        raise CheckpointError(f"checkpoint optimizer is {saved['class']}, not {type(optimizer).__name__}")
    params = dict(state["net"].named_parameters())
    for group, saved_group in zip(optimizer.param_groups, saved["groups"]):
        group.update(saved_group["options"])
    optimizer.state.clear()
    for name, s in saved["state"].items():
        optimizer.state[params[name]] = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()}
