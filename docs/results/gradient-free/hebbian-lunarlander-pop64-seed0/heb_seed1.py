import json, sys
from pathlib import Path
from neuroplastic.experiments import get_experiment
exp = get_experiment("hebbian")
pop = int(sys.argv[1]); variant = sys.argv[2]; seed = int(sys.argv[3])
config = exp.config(False, False, {"envs": "LunarLander-v3", "popsize": pop, "generations": 300})
out = Path(f"/tmp/runs/heb-{variant}-pop{pop}-seed{seed}"); out.mkdir(exist_ok=True)
m = exp.run_job({"task": "LunarLander-v3", "variant": variant, "seed": seed}, config, out)
print(json.dumps({k: v for k, v in m.items() if k not in ("history", "returns")}))
print([(r["step"], round(r["best"]), round(r["mean"])) for r in m["history"][::20]])
