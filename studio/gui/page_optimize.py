"""Optimize: the recipe controls, the sweep grid, the dataset (with a preview) and the bounds."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
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

from studio.core.base.errors import StudioError
from studio.core.recipe.grid import Grid
from studio.core.recipe.recipe import Preprocess, Quantization, Recipe, Runtime

from .resources import icon, white_icon
from .widgets import Banner, Card, help_label, page_layout


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


class OptimizePage(QWidget):
    run_requested = Signal()
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
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
        cols = QHBoxLayout()
        cols.setSpacing(12)
        left, right = QVBoxLayout(), QVBoxLayout()
        cols.addLayout(left, 1)
        cols.addLayout(right, 1)
        box.addLayout(cols)

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
        left.addWidget(data)

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
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 50)
        _row(form, "Recovery epochs", self.epochs, "Fine-tune after pruning on the training data below.")
        self.train = QLineEdit()
        self.train.setPlaceholderText("training data for recovery (optional)")
        _row(form, "Training data", self.train, "Labelled data; pruning without recovery loses accuracy.")
        grid_card.body.addLayout(form)
        self.count = QLabel("")
        grid_card.body.addWidget(self.count)
        left.addWidget(grid_card)

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
        right.addWidget(recipe)

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
        self.devices_known: list[str] = []  # inventory names, kept to re-select the project's device
        _row(bform, "Device latency", self.device, "Also time every candidate on this device, next to this"
                                                   " machine's latency.")
        bounds.body.addLayout(bform)
        right.addWidget(bounds)
        right.addStretch()
        left.addStretch()

        run_row = QHBoxLayout()
        run_row.addStretch()
        self.run = QPushButton(white_icon("play"), "Run sweep")
        self.run.setObjectName("primary")
        self.run.setToolTip("Measure every candidate (Ctrl+R)")
        self.run.clicked.connect(self.run_requested)
        run_row.addWidget(self.run)
        box.addLayout(run_row)
        for w in list(self.targets.values()) + list(self.quants.values()) + [self.per_channel, self.sensitivity]:
            w.toggled.connect(self._changed)
        for w in (self.prune, self.dataset, self.train):
            w.textChanged.connect(self._changed)
        for w in (self.epochs, self.calib_n, self.threads, self.budget):
            w.valueChanged.connect(self._changed)
        for w in (self.max_drop, self.scale):
            w.valueChanged.connect(self._changed)
        for w in (self.prune_method, self.calib, self.io, self.layout_combo, self.device):
            w.currentTextChanged.connect(self._changed)

    # --- state <-> widgets ----------------------------------------------------------------------------------
    def set_state(self, project) -> None:
        widgets = list(self.targets.values()) + list(self.quants.values())
        for w in widgets:
            w.blockSignals(True)
        grid = Grid.from_dict(project.grid) if project.grid else Grid()
        for t, c in self.targets.items():
            c.setChecked(t in grid.targets)
        for q, c in self.quants.items():
            c.setChecked(q in grid.quant)
        for w in widgets:
            w.blockSignals(False)
        self.prune.setText(", ".join(f"{r:g}" for r in grid.prune))
        self.prune_method.setCurrentText(grid.prune_method)
        self.epochs.setValue(grid.finetune_epochs)
        b = grid.base
        self.calib.setCurrentText(b.quantization.calibration.value)
        self.per_channel.setChecked(b.quantization.per_channel)
        self.io.setCurrentText(b.quantization.io)
        self.scale.setValue(b.preprocess.scale)
        self.layout_combo.setCurrentText(b.preprocess.layout.value)
        self.calib_n.setValue(b.quantization.calib_samples)
        self.threads.setValue(b.runtime.threads)
        self.dataset.setText(project.dataset or "")
        self.train.setText(project.train_dataset or "")
        self.max_drop.setValue(project.max_drop or 0)
        self.budget.setValue(int(project.budget_min or 0))
        self.sensitivity.setChecked(project.sensitivity)
        self.set_devices(self.devices_known, project.sweep_device)
        self.refresh_preview()
        self._changed()

    def set_devices(self, names: list[str], chosen: str | None) -> None:
        self.devices_known = list(names)
        self.device.blockSignals(True)
        self.device.clear()
        self.device.addItem("only this machine", None)
        for name in names:
            self.device.addItem(name, name)
        index = self.device.findData(chosen)
        self.device.setCurrentIndex(max(0, index))
        self.device.blockSignals(False)

    def grid(self) -> Grid:
        ratios = tuple(float(x) for x in self.prune.text().replace(";", ",").split(",") if x.strip())
        base = Recipe(quantization=Quantization(calibration=self.calib.currentText(),
                                                per_channel=self.per_channel.isChecked(), io=self.io.currentText(),
                                                calib_samples=self.calib_n.value()),
                      preprocess=Preprocess(scale=self.scale.value(), layout=self.layout_combo.currentText()),
                      runtime=Runtime(threads=self.threads.value()))
        return Grid(targets=tuple(t for t, c in self.targets.items() if c.isChecked()),
                    quant=tuple(q for q, c in self.quants.items() if c.isChecked()), prune=ratios or (0.0,),
                    prune_method=self.prune_method.currentText(), finetune_epochs=self.epochs.value(), base=base)

    def _changed(self, *args) -> None:
        try:
            n = len(self.grid().candidates())
            self.count.setText(f"<b>{n}</b> candidate{'s' if n != 1 else ''} to measure")
            self.run.setEnabled(True)
        except (StudioError, ValueError) as exc:
            self.count.setText(f"<span style='color:#d24b4b'>{getattr(exc, 'message', exc)}</span>")
            self.run.setEnabled(False)
        self.changed.emit()

    def _choose_dataset(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a dataset", "", "Datasets (*.npz);;All files (*)")
        if not path:
            path = QFileDialog.getExistingDirectory(self, "…or a folder of images")
        if path:
            self.dataset.setText(path)
            self.refresh_preview()

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
        for i, x in enumerate(ds.x[:8]):
            label = QLabel()
            label.setAlignment(Qt.AlignCenter)
            label.setToolTip(f"label {ds.labels[ds.y[i]] if ds.labels and ds.y is not None else ds.y[i]}"
                             if ds.y is not None else "no label")
            pix = _thumbnail(x)
            if pix is not None:
                label.setPixmap(pix)
            else:
                label.setText(str(list(x.shape)))
            self.preview.addWidget(label)
        self.preview.addStretch()
        kind = "labelled" if ds.labelled else "label-free (agreement only)"
        self.data_note.setText(f"{kind} {ds.kind} samples of shape {list(ds.x.shape[1:])}, dtype {ds.x.dtype}")


def _thumbnail(x: np.ndarray) -> QPixmap | None:
    a = np.asarray(x)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or min(a.shape[:2]) < 4:
        return None
    a = a.astype(np.float32)
    a = ((a - a.min()) / max(1e-9, float(a.max() - a.min())) * 255).astype(np.uint8)
    a = np.ascontiguousarray(a)
    if a.ndim == 2:
        img = QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QImage.Format_Grayscale8)
    else:
        img = QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QImage.Format_RGB888)
    return QPixmap.fromImage(img.copy()).scaled(48, 48, Qt.KeepAspectRatio, Qt.SmoothTransformation)



