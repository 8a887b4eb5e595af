"""What a self-editing population's edit rounds cost, by edit path, at the experiment's sizes.

`python benchmarks/self_editing_edits.py [--rounds N] [--rows R]`: P*B = R self-built networks
(CartPole-v1 and LunarLander-v3 shapes, max_hidden 16), driven with random observations; every
`edit_every` = 10 steps an edit round (the editor and its commands) runs through
`GraphBatch.apply_edit_arrays` ("arrays", all members in tensor ops) and, on a copy fed the
same inputs, through `GraphBatch.apply_edits` with one Edits per member ("members", a GraphNet
round trip each). Both grow the same graphs (checked here). Prints ms per round and per
generation (a full episode: 500 steps for CartPole, 1000 for LunarLander, one round every 10)
and writes docs/results/gradient-free/self-editing/edit-paths.json.
"""
import argparse
import json
import platform
import time
from pathlib import Path

import torch

from neuroplastic.evolve.self_editing import SelfEditingControllers, SelfEditingPopulation

EPISODE = {"CartPole-v1": 500, "LunarLander-v3": 1000}


def measure(env_id: str, rows: int, rounds: int, every: int = 10) -> dict:
    out, built = {}, {}
    for path in ("arrays", "members"):
        c = SelfEditingControllers(env_id, edit_every=every, max_hidden=16, edit_path=path)
        torch.manual_seed(0)
        cands = torch.randn(rows, c.n_params) * 0.5
        gen = torch.Generator().manual_seed(1)
        edit_s = forward_s = 0.0
        with torch.no_grad():
            pop = SelfEditingPopulation(c, cands, 1)
            for step in range(rounds * every):
                x = torch.randn(rows, 1, c.env.n_in, generator=gen)
                if step % every == 0:
                    t = time.perf_counter()
                    pop.edit()
                    edit_s += time.perf_counter() - t
                t = time.perf_counter()
                pop.steps += 1  # the edit round above stands for the one __call__ would run
                y, a = pop.batch(x, return_activity=True)
                pop.act_sum += a[:, 0]
                pop.act_sq += a[:, 0] ** 2
                pop.coact += a[:, 0, :, None] * a[:, 0, None, :]
                pop.window += 1
                forward_s += time.perf_counter() - t
        c.close()
        built[path] = [sorted(zip(*(t.tolist() for t in n.edges()))) for n in pop.batch.to_nets()]
        per_round = 1000 * edit_s / rounds
        out[path] = {"ms_per_round": per_round, "ms_per_step_forward": 1000 * forward_s / (rounds * every),
                     "s_per_generation": per_round * EPISODE[env_id] / every / 1000,
                     "mean_hidden_at_end": float(pop.batch.n_hidden.float().mean())}
    assert built["arrays"] == built["members"], "the two edit paths built different graphs"
    out["ratio"] = out["members"]["ms_per_round"] / out["arrays"]["ms_per_round"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--rows", type=int, default=96, help="P*B members (popsize 32 x 3 episodes)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"machine": f"{platform.system()} {platform.machine()}, 1 torch thread, torch {torch.__version__}",
              "rows": args.rows, "rounds": args.rounds, "edit_every": 10,
              "command": f"python benchmarks/self_editing_edits.py --rounds {args.rounds} --rows {args.rows}",
              "envs": {}}
    print(f"{'env':16} {'path':8} {'ms/round':>9} {'s/generation':>13} {'forward ms/step':>16}")
    for env_id in EPISODE:
        r = measure(env_id, args.rows, args.rounds)
        result["envs"][env_id] = r
        for path in ("arrays", "members"):
            m = r[path]
            print(f"{env_id:16} {path:8} {m['ms_per_round']:9.1f} {m['s_per_generation']:13.2f} "
                  f"{m['ms_per_step_forward']:16.2f}")
        print(f"{env_id:16} members / arrays: {r['ratio']:.1f}x")
    path = Path("docs/results/gradient-free/self-editing/edit-paths.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
