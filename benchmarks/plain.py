"""The scripts a user would write by hand with the libraries Studio uses, the honest baseline of
benchmarks/realsize.py and benchmarks/sweep.py. Each runs in its own `python -c` process (imports included, as a
`studio` command pays them), with Studio's default settings: torch.onnx.export (dynamo, dynamic batch, opset 17),
onnxruntime's pre-processing and static QDQ int8 (per-channel, MinMax, 100 calibration samples), litert-torch and
ai-edge-quantizer (static int8, channel-wise), torch-pruning for structured pruning; a sweep's timing is 10 warm-up
runs then the median of 50 at batch 1 with one thread.

A script reads its settings as one JSON argument: the model (a state_dict and its torchvision builder, or a module
path and class), the data (.npz with x, y) and the input shape of one sample, and prints one JSON line."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass

PRELUDE = r'''
import importlib, json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
import torch
cfg = json.loads(sys.argv[1])
data = np.load(cfg["data"])
x = data["x"].astype(np.float32).reshape(-1, *cfg["sample_shape"])
y = data["y"][:len(x)]
module, _, builder = cfg["builder"].rpartition(".")
model = getattr(importlib.import_module(module), builder)()
model.load_state_dict(torch.load(cfg["state_dict"]))
model.eval()

def median_ms(run):
    for _ in range(10):
        run()
    times = []
    for _ in range(50):
        t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))

def prune(net, ratio):
    import copy
    import torch_pruning as tp
    net = copy.deepcopy(net)
    last = [m for m in net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][-1]
    tp.pruner.BasePruner(net, torch.from_numpy(x[:1]), importance=tp.importance.GroupMagnitudeImportance(p=2),
                         pruning_ratio=ratio, ignored_layers=[last]).step()
    return net.eval()

def export_onnx(net, path):
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(net, (torch.from_numpy(x[:2]),), dynamo=True, external_data=False, opset_version=17,
                      verbose=False, input_names=["x"], dynamic_shapes=({0: batch},)).save(path)

def quantize_onnx(src, path, quant):
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre = path + ".pre.onnx"
    quant_pre_process(src, pre, skip_symbolic_shape=False)
    if quant == "dynamic":
        return quantize_dynamic(pre, path, per_channel=True, weight_type=QuantType.QInt8)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.rows = iter({"x": x[i:i + 1]} for i in range(min(100, len(x))))
        def get_next(self):
            return next(self.rows, None)

    quantize_static(pre, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    calibrate_method=CalibrationMethod.MinMax, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)

def export_tflite(net, path):
    import litert_torch
    litert_torch.convert(net, (torch.from_numpy(x[:1]),)).export(path)

def quantize_tflite(src, path, quant):
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import qtyping, quantizer, recipe, recipe_manager
    if quant == "dynamic":
        qt = quantizer.Quantizer(src, recipe.dynamic_wi8_afp32())
        return qt.quantize(None, enable_progress_report=False).export_model(path, overwrite=True)
    manager = recipe_manager.RecipeManager()
    manager.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                              activation_num_bits=8, weight_num_bits=8,
                              weight_granularity=qtyping.QuantGranularity.CHANNELWISE)
    qt = quantizer.Quantizer(src, manager.get_quantization_recipe())
    key, sig = next(iter(Interpreter(model_path=src).get_signature_list().items()))
    rows = [{sig["inputs"][0]: x[i:i + 1]} for i in range(min(100, len(x)))]
    qt.quantize(qt.calibrate({key: rows}, num_threads=1), enable_progress_report=False).export_model(path,
                                                                                                  overwrite=True)

def runner(path):
    """One batch-1 run of the model on one thread (as Studio times it), and a prediction over many samples with the
    runtime's default threads (ONNX: batches of 64)."""
    if path.endswith(".onnx"):
        import onnxruntime as ort
        opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
        s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        e = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return (lambda: s.run(None, {"x": x[:1]}),
                lambda xs: np.concatenate([e.run(None, {"x": xs[k:k + 64]})[0] for k in range(0, len(xs), 64)]))
    one = tflite_runner(path, 1)
    return (lambda: one(x[:1])), predict_tflite(tflite_runner(path, None))

def predict_tflite(run):
    return lambda xs: np.concatenate([run(xs[k:k + 1]) for k in range(len(xs))])

def tflite_runner(path, threads):
    """One run of a TFLite model on one sample (threads None: the interpreter's default)."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    (si, zi), (so, zo) = i["quantization"], o["quantization"]

    def run(sample):
        if i["dtype"] == np.int8:  # full-integer model: int8 in and out
            sample = np.clip(np.round(sample / si + zi), -128, 127).astype(np.int8)
        it.set_tensor(i["index"], sample); it.invoke()
        y = it.get_tensor(o["index"])
        return (y.astype(np.float32) - zo) * so if o["dtype"] == np.int8 else y
    return run

def build(net, target, quant, path):
    """The candidate's model file: converted from net, quantized unless quant is none."""
    floated = path if quant == "none" else f"{path}.float.{target}"
    if target == "onnx":
        export_onnx(net, floated)
        if quant != "none":
            quantize_onnx(floated, path, quant)
    else:
        export_tflite(net, floated)
        if quant != "none":
            quantize_tflite(floated, path, quant)
'''

# One optimize, as `studio optimize` does it: convert (and quantize), check the result on 8 samples against the
# torch model (no timing: optimize does not time either).
OPTIMIZE = r'''
c = cfg["candidates"][0]
build(model, c["target"], c["quant"], cfg["out"])
with torch.no_grad():
    reference = model(torch.from_numpy(x[:8])).numpy()
check = runner(cfg["out"])[1](x[:8])
print(json.dumps({"agreement": float((check.argmax(1) == reference.argmax(1)).mean())}))
'''

# A sweep in one process: each (target, pruning) float model converted once, every candidate evaluated on all
# samples against the labels and the torch model, and timed.
SWEEP = r'''
with torch.no_grad():
    full = np.concatenate([model(torch.from_numpy(x[k:k + 64])).numpy() for k in range(0, len(x), 64)])
rows, pruned = {}, {}
for c in cfg["candidates"]:
    net = pruned.setdefault(c["prune"], prune(model, c["prune"]) if c["prune"] else model)
    path = f"{cfg['out']}/{c['id']}.{c['target']}"
    if c["quant"] == "none":
        build(net, c["target"], "none", path)
    else:
        floated = f"{cfg['out']}/{c['target']}-p{c['prune']}.float.{c['target']}"
        if not __import__("os").path.exists(floated):
            (export_onnx if c["target"] == "onnx" else export_tflite)(net, floated)
        (quantize_onnx if c["target"] == "onnx" else quantize_tflite)(floated, path, c["quant"])
    once, predict = runner(path)
    got = predict(x)
    rows[c["id"]] = {"accuracy": 100 * float((got.argmax(1) == y).mean()),
                     "agreement": 100 * float((got.argmax(1) == full.argmax(1)).mean()), "ms": median_ms(once)}
print(json.dumps(rows))
'''


@dataclass(frozen=True)
class PlainCandidate:
    id: str
    target: str  # onnx | tflite
    quant: str  # none | dynamic | int8
    prune: float = 0.0  # structured pruning ratio


@dataclass(frozen=True)
class PlainJob:
    builder: str  # the module-level function that builds the model: torchvision.models.mobilenet_v2
    state_dict: str
    data: str  # .npz with x and y
    sample_shape: tuple[int, ...]  # one sample as the model takes it: (3, 224, 224)
    out: str  # a file (optimize) or a folder (sweep)
    candidates: tuple[PlainCandidate, ...]


def run_plain(body: str, job: PlainJob) -> dict:
    """Run PRELUDE + body as a plain Python process; its JSON line."""
    done = subprocess.run([sys.executable, "-c", PRELUDE + body, json.dumps(asdict(job))], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the plain script failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
