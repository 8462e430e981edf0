"""Optimize: the recipe controls, the sweep grid, the dataset (with a preview) and the bounds."""
from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.core.app.project import SweepSettings
from studio.core.base.errors import StudioError
from studio.core.recipe.recipe import CalibMethod, Layout, PruneMethod, PruneScope, QuantMode, Target

from . import binding as bind
from .binding import Binding, Field
from .resources import icon, white_icon
from .widgets import Banner, Card, help_label, page_layout, thumbnail


def _row(form: QFormLayout, label: str, widget: QWidget, help_text: str) -> None:
    holder = QWidget()
    box = QVBoxLayout(holder)
    box.setContentsMargins(0, 0, 0, 0)
    box.setSpacing(1)
    box.addWidget(widget)
    box.addWidget(help_label(help_text))
    form.addRow(label, holder)


def _checks(form: QFormLayout, label: str, options, help_text: str) -> dict[str, QCheckBox]:
    """A row of check boxes, one per (key, label)."""
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    boxes = {key: QCheckBox(text) for key, text in options}
    for box in boxes.values():
        row.addWidget(box)
    row.addStretch()
    _row(form, label, holder, help_text)
    return boxes


def _ratios(edit: QLineEdit) -> Field:
    """Pruning ratios typed as "0, 0.25, 0.5" (a bad number raises ValueError when read)."""
    def get() -> tuple[float, ...]:
        return tuple(float(x) for x in edit.text().replace(";", ",").split(",") if x.strip()) or (0.0,)
    return Field((edit,), get, lambda v: edit.setText(", ".join(f"{r:g}" for r in v)), (edit.textChanged,))



def _optional_choice(combo: QComboBox) -> Field:
    """An editable combo box holding an optional string (blank is None)."""
    return Field((combo,), lambda: combo.currentText().strip() or None, lambda v: combo.setCurrentText(v or ""),
                 (combo.currentTextChanged,))


# Where each widget's value lives in SweepSettings: settings() and render() both walk this one table.
FIELDS: dict[str, tuple[str, ...]] = {
    "targets": ("grid", "targets"), "quant": ("grid", "quant"), "prune": ("grid", "prune"),
    "prune_method": ("grid", "prune_method"), "prune_scope": ("grid", "prune_scope"),
    "finetune_epochs": ("grid", "finetune_epochs"),
    "train_dataset": ("train_dataset",),
    "calibration": ("grid", "base", "quantization", "calibration"),
    "per_channel": ("grid", "base", "quantization", "per_channel"), "io": ("grid", "base", "quantization", "io"),
    "calib_samples": ("grid", "base", "quantization", "calib_samples"),
    "scale": ("grid", "base", "preprocess", "scale"), "layout": ("grid", "base", "preprocess", "layout"),
    "threads": ("grid", "base", "runtime", "threads"), "dataset": ("dataset",), "max_drop": ("max_drop",),
    "budget_min": ("budget_min",), "sensitivity": ("sensitivity",), "device": ("device",),
    "score_output": ("score_output",), "metric": ("metric",), "min_fidelity": ("min_fidelity",),
    "cluster": ("cluster",)}


def _get(record: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        record = getattr(record, name)
    return record


def _with(record: Any, changes: dict[tuple[str, ...], Any]) -> Any:
    """record with the values at these paths replaced; each record on the way is rebuilt (and checked) once."""
    own: dict[str, Any] = {}
    nested: dict[str, dict[tuple[str, ...], Any]] = {}
    for path, value in changes.items():
        if len(path) == 1:
            own[path[0]] = value
        else:
            nested.setdefault(path[0], {})[path[1:]] = value
    own.update({name: _with(getattr(record, name), sub) for name, sub in nested.items()})
    return dataclasses.replace(record, **own)


class OptimizePage(QWidget):
    """Emits the SweepSettings its widgets make (when they make a valid one); renders one when restored."""
    run_requested = Signal()
    settings_changed = Signal(object)  # SweepSettings

    def __init__(self, parent=None):
        super().__init__(parent)
        self._shown = SweepSettings()  # the last settings shown or made: keeps recipe fields the page has no widget for
        self.devices_known: list[str] = []  # inventory names, kept to re-select the project's device
        box = self._build_frame()
        cols = QHBoxLayout()
        cols.setSpacing(12)
        left, right = QVBoxLayout(), QVBoxLayout()
        cols.addLayout(left, 1)
        cols.addLayout(right, 1)
        box.addLayout(cols)
        left.addWidget(self._build_dataset_card())
        left.addWidget(self._build_grid_card())
        left.addStretch()
        right.addWidget(self._build_recipe_card())
        right.addWidget(self._build_bounds_card())
        right.addStretch()
        box.addLayout(self._build_run_row())
        self.binding = self._bind()
        self.binding.changed.connect(self._on_widget_changed)

    # --- builders ---------------------------------------------------------------------------------------------
    def _build_frame(self) -> QVBoxLayout:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        outer.addWidget(scroll)
        inner = QWidget()
        scroll.setWidget(inner)
        box = page_layout(inner, "Optimize", "Choose what to try. Every candidate is converted, run and timed for"
                                             " real; nothing is estimated.")
        self.banner = Banner()
        box.addWidget(self.banner)
        return box

    def _build_dataset_card(self) -> Card:
        data = Card("Dataset")
        row = QHBoxLayout()
        self.dataset = QLineEdit()
        self.dataset.setPlaceholderText(".npz with x (and y), or a folder of images in class folders")
        pick = QPushButton(icon("load"), "Choose…")
        pick.clicked.connect(self._choose_dataset)
        row.addWidget(self.dataset, 1)
        row.addWidget(pick)
        data.body.addLayout(row)
        self.preview = QHBoxLayout()
        self.preview.setSpacing(6)
        data.body.addLayout(self.preview)
        self.data_note = help_label("Samples are reshaped to the model's input and cast; set scaling below.")
        data.body.addWidget(self.data_note)
        self.dataset.editingFinished.connect(self.refresh_preview)
        return data

    def _build_grid_card(self) -> Card:
        grid_card = Card("Sweep grid")
        form = QFormLayout()
        self.targets = _checks(form, "Targets", (("onnx", "ONNX (onnxruntime)"), ("tflite", "TFLite (ai-edge-litert)")),
                               "The runtime the device will use.")
        self.quants = _checks(form, "Quantization", (("none", "FP32"), ("dynamic", "dynamic int8"),
                                                     ("int8", "static int8"), ("fp16", "FP16")),
                              "Int8 is smaller but not always faster: the sweep measures it.")
        self.prune = QLineEdit("0")
        _row(form, "Pruning ratios", self.prune, "Fractions of channels to remove, e.g. 0, 0.25, 0.5.")
        self.prune_method = QComboBox()
        self.prune_method.addItems(["structured", "unstructured"])
        _row(form, "Pruning method", self.prune_method, "Structured removes channels (PyTorch models): smaller"
                                                        " and faster. Unstructured only zeroes weights.")
        self.prune_scope = QComboBox()
        self.prune_scope.addItems(["layer", "global"])
        _row(form, "Pruning scope", self.prune_scope, "Per layer prunes each layer by the ratio; global ranks all"
                                                      " weights together and can empty a whole layer.")
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 50)
        _row(form, "Recovery epochs", self.epochs, "Fine-tune after pruning on the training data below.")
        self.train = QLineEdit()
        self.train.setPlaceholderText("training data for recovery (optional)")
        _row(form, "Training data", self.train, "Labelled data; pruning without recovery loses accuracy.")
        grid_card.body.addLayout(form)
        self.count = QLabel("")
        grid_card.body.addWidget(self.count)
        return grid_card

    def _build_recipe_card(self) -> Card:
        recipe = Card("Recipe details")
        rform = QFormLayout()
        self.calib = QComboBox()
        self.calib.addItems(["minmax", "entropy", "percentile"])
        _row(rform, "Calibration", self.calib, "How int8 ranges are chosen (entropy/percentile: ONNX only).")
        self.per_channel = QCheckBox("per-channel weights")
        self.per_channel.setChecked(True)
        _row(rform, "Granularity", self.per_channel, "Per-channel keeps more accuracy at no speed cost.")
        self.io = QComboBox()
        self.io.addItems(["int8", "float"])
        _row(rform, "TFLite int8 I/O", self.io, "int8 inputs/outputs suit microcontrollers; float is Keras only.")
        self.scale = QDoubleSpinBox()
        self.scale.setDecimals(6)
        self.scale.setRange(0.000001, 1000)
        self.scale.setValue(1.0)
        _row(rform, "Input scale", self.scale, "Multiply samples by this (1/255 = 0.003922 for 0-1 models).")
        self.layout_combo = QComboBox()
        self.layout_combo.addItems(["as_is", "nchw", "nhwc"])
        _row(rform, "Layout", self.layout_combo, "Reorder image samples to the model's channel layout.")
        self.calib_n = QSpinBox()
        self.calib_n.setRange(1, 10000)
        self.calib_n.setValue(100)
        _row(rform, "Calibration samples", self.calib_n, "Samples used to calibrate static int8.")
        self.threads = QSpinBox()
        self.threads.setRange(1, 64)
        _row(rform, "Threads", self.threads, "Runtime threads when timing (match your device).")
        recipe.body.addLayout(rform)
        return recipe

    def _build_bounds_card(self) -> Card:
        bounds = Card("Bounds")
        bform = QFormLayout()
        self.max_drop = QDoubleSpinBox()
        self.max_drop.setRange(0, 100)
        self.max_drop.setSpecialValueText("off")
        self.max_drop.setSuffix(" points")
        _row(bform, "Max accuracy drop", self.max_drop, "Keep the most sensitive layers in float until int8 is"
                                                        " within this bound.")
        self.budget = QSpinBox()
        self.budget.setRange(0, 24 * 60)
        self.budget.setSpecialValueText("none")
        self.budget.setSuffix(" min")
        _row(bform, "Time budget", self.budget, "Stop starting new candidates after this; re-run to continue.")
        self.sensitivity = QCheckBox("measure per-layer sensitivity")
        self.sensitivity.setChecked(True)
        _row(bform, "Sensitivity", self.sensitivity, "Which layers lose most when quantized or pruned alone.")
        self.device = QComboBox()
        self.device.addItem("only this machine", None)
        _row(bform, "Device latency", self.device, "Also time every candidate on this device, next to this"
                                                   " machine's latency.")
        self.score_output = QLineEdit()
        self.score_output.setPlaceholderText("automatic: the output of class scores, else the first")
        _row(bform, "Scoring output", self.score_output, "The model output that scores a candidate (a detector's"
                                                         " class scores, not its boxes).")
        self.metric = QComboBox()
        self.metric.setEditable(True)
        self.metric.addItems(["", "accuracy", "agreement", "cosine", "sqnr"])
        _row(bform, "Metric", self.metric, "Blank: accuracy with labels, else agreement for class scores, else"
                                           " cosine. Or your own FILE.py:FUNCTION.")
        self.min_fidelity = QLineEdit()
        self.min_fidelity.setPlaceholderText("agreement=90, cosine=0.95, sqnr=10")
        _row(bform, "Quality gate", self.min_fidelity, "Below any of these on the scoring output a candidate is"
                                                       " degraded: greyed, never on the front or recommended.")
        self.cluster = QLineEdit()
        self.cluster.setPlaceholderText("this machine (or a Ray head: host:6379, ray://host:10001)")
        _row(bform, "Ray cluster", self.cluster, "Build and evaluate the candidates as tasks on this Ray cluster;"
                                                 " latency is still measured here (or on the device).")
        bounds.body.addLayout(bform)
        return bounds

    def _build_run_row(self) -> QHBoxLayout:
        run_row = QHBoxLayout()
        run_row.addStretch()
        self.run = QPushButton(white_icon("play"), "Run sweep")
        self.run.setObjectName("primary")
        self.run.setToolTip("Measure every candidate (Ctrl+R)")
        self.run.clicked.connect(self.run_requested)
        run_row.addWidget(self.run)
        return run_row

    def _bind(self) -> Binding:
        """Every widget by the name of the settings value it holds (FIELDS says where that value lives)."""
        return Binding({
            "targets": bind.ticked(self.targets, Target), "quant": bind.ticked(self.quants, QuantMode),
            "prune": _ratios(self.prune), "prune_method": bind.choice(self.prune_method, PruneMethod),
            "prune_scope": bind.choice(self.prune_scope, PruneScope),
            "finetune_epochs": bind.number(self.epochs), "train_dataset": bind.text(self.train),
            "calibration": bind.choice(self.calib, CalibMethod), "per_channel": bind.checked(self.per_channel),
            "io": bind.choice(self.io), "scale": bind.number(self.scale),
            "layout": bind.choice(self.layout_combo, Layout), "calib_samples": bind.number(self.calib_n),
            "threads": bind.number(self.threads), "dataset": bind.text(self.dataset),
            "max_drop": bind.number(self.max_drop, zero_is_none=True),
            "budget_min": bind.number(self.budget, zero_is_none=True),
            "sensitivity": bind.checked(self.sensitivity), "device": bind.item_data(self.device),
            "score_output": bind.text(self.score_output), "metric": _optional_choice(self.metric),
            "min_fidelity": bind.text(self.min_fidelity), "cluster": bind.text(self.cluster)}, self)

    # --- settings <-> widgets ---------------------------------------------------------------------------------
    def settings(self) -> SweepSettings:
        """The settings the widgets show (StudioError or ValueError when they do not make a valid grid)."""
        v = self.binding.values()
        return _with(self._shown, {path: v[name] for name, path in FIELDS.items()})

    def render(self, settings: SweepSettings) -> None:
        """Show these settings; no settings_changed is emitted for them."""
        self._shown = settings
        self.binding.show({name: _get(settings, path) for name, path in FIELDS.items() if name != "device"})
        self.set_devices(self.devices_known, settings.device)
        self.refresh_preview()
        self._show_count(settings)

    def set_devices(self, names: list[str], chosen: str | None) -> None:
        self.devices_known = list(names)
        with QSignalBlocker(self.device):
            self.device.clear()
            self.device.addItem("only this machine", None)
            for name in names:
                self.device.addItem(name, name)
            self.device.setCurrentIndex(max(0, self.device.findData(chosen)))

    def _on_widget_changed(self) -> None:
        try:
            settings = self.settings()
        except (StudioError, ValueError) as exc:
            self._show_count(None, getattr(exc, "message", str(exc)))
            return
        self._shown = settings
        self._show_count(settings)
        self.settings_changed.emit(settings)

    def _show_count(self, settings: SweepSettings | None, problem: str = "") -> None:
        if settings is None:
            self.count.setText(f"<span style='color:#d24b4b'>{problem}</span>")
        else:
            n = len(settings.grid.candidates())
            self.count.setText(f"<b>{n}</b> candidate{'s' if n != 1 else ''} to measure")
        self.run.setEnabled(settings is not None)

    def _choose_dataset(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a dataset", "", "Datasets (*.npz);;All files (*)")
        if not path:
            path = QFileDialog.getExistingDirectory(self, "…or a folder of images")
        if path:
            self.dataset.setText(path)
            self.refresh_preview()

    def set_model(self, inputs, shapes: tuple[str, ...]) -> None:
        """The loaded model's inputs and the shapes set for them: the preview says how the data fits them."""
        self._model_inputs, self._model_shapes = list(inputs), shapes
        self.refresh_preview()

    def _fit_note(self, ds) -> str:
        """How the dataset fits the model's inputs (the resolved shapes and any layout change), or why it does not."""
        from studio.core.data.feeding import fit
        from studio.core.tensors.shapes import ShapeRequest

        inputs = getattr(self, "_model_inputs", None)
        if not inputs:
            return ""
        try:
            fitted = fit(ds, inputs, ShapeRequest.parse(self._model_shapes), self._shown.grid.base.preprocess, 8)
        except StudioError as exc:
            return f"<br><span style='color:#d24b4b'>{exc.message}</span>"
        shapes = ", ".join(f"{i.name} {list(i.shape)}" for i in fitted.samples.inputs)
        return f"<br>Runs the model at {shapes}" + "".join(f"; {n}" for n in fitted.notes)

    def refresh_preview(self) -> None:
        from studio.core.data.datasets import load_dataset

        while self.preview.count():
            item = self.preview.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        path = self.dataset.text().strip()
        if not path:
            self.data_note.setText("No dataset: the sweep would use synthetic inputs and measure agreement only.")
            return
        try:
            ds = load_dataset(path, limit=8)
        except StudioError as exc:
            self.data_note.setText(f"<span style='color:#d24b4b'>{exc.one_line()}</span>")
            return
        first = ds.x if ds.x is not None else next(iter(ds.named.values()))
        for i, x in enumerate(first[:8] if first.ndim else [first]):
            label = QLabel()
            label.setAlignment(Qt.AlignCenter)
            label.setToolTip(f"label {ds.labels[ds.y[i]] if ds.labels and ds.y is not None else ds.y[i]}"
                             if ds.y is not None else "no label")
            pix = thumbnail(x)
            if pix is not None:
                label.setPixmap(pix)
            else:
                label.setText(str(list(x.shape)))
            self.preview.addWidget(label)
        self.preview.addStretch()
        kind = "labelled" if ds.labelled else "label-free (agreement only)"
        arrays = ", ".join(f"{k} {list(a.shape)}" for k, a in ds.named.items())
        what = f"samples of shape {list(first.shape[1:])}, dtype {first.dtype}" if ds.x is not None else arrays
        self.data_note.setText(f"{kind} {ds.kind} {what}{self._fit_note(ds)}")
