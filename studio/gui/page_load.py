"""Load: open a model (dialog or drag and drop), see what it holds and what is wrong with it."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QTabWidget,
    QWidget,
)

from studio.core.app.project import ModelChoice
from studio.core.base.errors import StudioError
from studio.core.inspect.arch_spec import TRUST_CODE_TEXT, classes_in
from studio.core.inspect.modelinfo import ModelInfo, human_bytes, human_count
from studio.core.tensors.shapes import ShapeRequest

from .widgets import Banner, Card, DropZone, Metric, help_label, page_layout

MODEL_FILTER = "Models (*.onnx *.tflite *.pt *.pth *.pt2 *.ts *.jit *.keras *.h5 *.hdf5);;All files (*)"


def table_model(headers: list[str], rows: list[list]) -> QStandardItemModel:
    model = QStandardItemModel(len(rows), len(headers))
    model.setHorizontalHeaderLabels(headers)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            item = QStandardItem()
            item.setData(value if isinstance(value, (int, float)) else str(value), Qt.DisplayRole)
            item.setEditable(False)
            model.setItem(r, c, item)
    return model


class LoadPage(QWidget):
    model_loaded = Signal(object)  # ModelInfo
    load_requested = Signal(str)
    shapes_changed = Signal(object)  # tuple[str, ...]: valid --input-shape values
    graph_requested = Signal(str)  # the loaded model's path

    def __init__(self, parent=None):
        super().__init__(parent)
        box = page_layout(self, "Load a model", "ONNX, TFLite, PyTorch (.pt2, TorchScript, state_dict) or Keras"
                                                " (.keras, .h5, SavedModel). Nothing runs from the file until it is"
                                                " inspected safely in a separate process.")
        self.drop = DropZone("Drop a model file here, or click to choose one  (Ctrl+O)")
        self.drop.dropped.connect(self.load_requested)
        self.drop.clicked.connect(self.choose)
        box.addWidget(self.drop)
        box.addLayout(self._build_arch())
        self.banner = Banner()
        box.addWidget(self.banner)
        box.addWidget(self._build_summary())
        box.addWidget(self._build_tables(), 1)
        box.addWidget(help_label("Next: choose how to optimize it (Ctrl+2)."))
        self.summary.hide()
        self.tabs.hide()
        self.info: ModelInfo | None = None

    def _build_arch(self) -> QGridLayout:
        """The architecture of a state_dict: a known name, or a class of the user's own .py file (with consent)."""
        opts = QGridLayout()
        self.arch = QComboBox()
        self.arch.setEditable(True)
        self.arch.addItems(["", "studio.mnist_cnn", "resnet18", "mobilenet_v2", "mobilenet_v3_small",
                            "efficientnet_b0"])
        self.arch.setToolTip("For a state_dict: the architecture its weights belong to")
        self.code_file = QLineEdit()
        self.code_file.setPlaceholderText("or your own architecture: a .py file")
        self.code_file.editingFinished.connect(lambda: self._list_classes(self.code_file.text().strip()))
        pick = QPushButton("Choose .py…")
        pick.clicked.connect(self.choose_code)
        self.code_class = QComboBox()
        self.code_class.setEditable(True)
        self.code_class.setToolTip("The nn.Module class in that file")
        self.arch_args = QLineEdit()
        self.arch_args.setPlaceholderText('keyword arguments, e.g. {"num_classes": 10}')
        self.trust = QCheckBox("Trust pickled modules from this file")
        self.trust.setToolTip("Unpickling runs code from the file: tick only for files you trust")
        self.trust_code = QCheckBox("Trust the code of this architecture")
        self.trust_code.setToolTip(TRUST_CODE_TEXT[0].upper() + TRUST_CODE_TEXT[1:])
        opts.addWidget(QLabel("Architecture (state_dict only):"), 0, 0)
        opts.addWidget(self.arch, 0, 1)
        opts.addWidget(self.trust, 0, 2)
        opts.addWidget(QLabel("Your own class:"), 1, 0)
        row = QHBoxLayout()
        for widget in (self.code_file, pick, self.code_class, self.arch_args):
            row.addWidget(widget, 1 if widget is not pick else 0)
        opts.addLayout(row, 1, 1)
        opts.addWidget(self.trust_code, 1, 2)
        opts.setColumnStretch(1, 1)
        return opts

    def choose_code(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Your architecture's Python file", "", "Python (*.py)")
        if path:
            self.code_file.setText(path)
            self._list_classes(path)

    def _list_classes(self, path: str) -> None:
        """Offer the classes the file defines (read without running it)."""
        self.code_class.clear()
        if not path:
            return
        try:
            self.code_class.addItems(classes_in(path))
        except StudioError as exc:
            self.show_error(exc.one_line())

    def _build_summary(self) -> Card:
        self.summary = Card("Summary")
        self.graph = QPushButton("Show graph")
        self.graph.setToolTip("The model's graph in Netron, in its own window (served on this machine, offline)")
        self.graph.clicked.connect(lambda: self.info and self.graph_requested.emit(self.info.path))
        self.summary.body.removeWidget(self.summary.title)  # the title shares its row with the button
        title = QHBoxLayout()
        title.addWidget(self.summary.title, 1)
        title.addWidget(self.graph)
        self.summary.body.insertLayout(0, title)
        grid = QGridLayout()
        self.metrics = {k: Metric(k) for k in ("Format", "File size", "Parameters", "MACs (batch 1)",
                                               "Weights", "Operators")}
        for i, m in enumerate(self.metrics.values()):
            grid.addWidget(m, 0 if i < 3 else 1, i % 3)
        self.summary.body.addLayout(grid)
        self.io = QLabel("")
        self.io.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.io.setWordWrap(True)
        self.summary.body.addWidget(self.io)
        shapes = QHBoxLayout()
        self.shapes = QLineEdit()
        self.shapes.setToolTip("The shape each input runs at, as NAME=1,3,320,320 (separate several with ';'): needed"
                               " for dynamic dims a dataset does not resolve; latency is measured at these shapes")
        self.shapes.editingFinished.connect(self._on_shapes_edited)
        shapes.addWidget(QLabel("Input shapes:"))
        shapes.addWidget(self.shapes, 1)
        self.summary.body.addLayout(shapes)
        self.problems = QLabel("")
        self.problems.setWordWrap(True)
        self.summary.body.addWidget(self.problems)
        return self.summary

    def _build_tables(self) -> QTabWidget:
        self.tabs = QTabWidget()
        self.layers = QTableView()
        self.ops = QTableView()
        for view in (self.layers, self.ops):
            view.setSortingEnabled(True)
            view.setAlternatingRowColors(True)
            view.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
            view.horizontalHeader().setStretchLastSection(True)
            view.verticalHeader().hide()
        self.tabs.addTab(self.layers, "Layers")
        self.tabs.addTab(self.ops, "Operators")
        return self.tabs

    def choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", "", MODEL_FILTER)
        if path:
            self.load_requested.emit(path)

    def choice(self, path: str) -> ModelChoice:
        """The model file with how the widgets say to open it."""
        code, cls = self.code_file.text().strip(), self.code_class.currentText().strip()
        arch = f"{code}:{cls}" if code and cls else self.arch.currentText().strip() or None
        return ModelChoice(path, arch=arch, trust_pickle=self.trust.isChecked(),
                           arch_args=self.arch_args.text().strip() or None, trust_code=self.trust_code.isChecked(),
                           input_shapes=self.shape_texts())

    def shape_texts(self) -> tuple[str, ...]:
        """The input shapes typed, when they are valid (a wrong one is shown in the banner and not used)."""
        texts = tuple(t.strip() for t in self.shapes.text().split(";") if t.strip())
        try:
            request = ShapeRequest.parse(texts)
            if self.info is not None:
                request.check_names(self.info.inputs)
        except StudioError as exc:
            self.banner.show_message("error", f"Input shapes: {exc.message}")
            return ()
        return texts

    def show_shapes(self, texts: tuple[str, ...]) -> None:
        self.shapes.setText("; ".join(texts))

    def _on_shapes_edited(self) -> None:
        self.shapes_changed.emit(self.shape_texts())

    def show_error(self, message: str) -> None:
        self.banner.show_message("error", message)

    def show_info(self, info: ModelInfo) -> None:
        self.info = info
        m = self.metrics
        m["Format"].set(f"{info.format}")
        m["File size"].set(human_bytes(info.size_bytes))
        m["Parameters"].set(human_count(info.params))
        m["MACs (batch 1)"].set(human_count(info.macs))
        m["Weights"].set(", ".join(info.weight_dtypes) or "-")
        m["Operators"].set(str(sum(info.ops.values())))

        def tensors(ts):
            return "<br>".join(f"<b>{t.name}</b> {t.shape_text()} {t.dtype}" + (
                f" (scale {t.quantization.scale[0]:.4g}, zero point {t.quantization.zero_point[0]})"
                if t.quantization and len(t.quantization.scale) == 1 else "") for t in ts) or "unknown"
        open_dims = [t for t in info.inputs if t.dynamic]
        hint = ("<br><i>Dynamic dims (marked ?) are taken from the dataset, or set them below, e.g. "
                f"{open_dims[0].name}=" + ",".join("1" if isinstance(d, str) and i == 0 else "…" if isinstance(d, str)
                                                  else str(d) for i, d in enumerate(open_dims[0].shape)) + "</i>"
                if open_dims else "")
        self.io.setText(f"<b>Inputs</b><br>{tensors(info.inputs)}{hint}<br><b>Outputs</b><br>"
                        f"{tensors(info.outputs)}")
        self.shapes.setPlaceholderText("; ".join(f"{t.name}=" + ",".join("?" if isinstance(d, str) else str(d)
                                                                          for d in t.shape) for t in open_dims)
                                       or "all input dims are fixed")
        if info.problems:
            self.problems.setText("<br>".join(
                f"<span style='color:{'#d24b4b' if p.severity == 'error' else '#d9982b'}'>●</span> {p.message}"
                for p in info.problems))
        else:
            self.problems.setText("<span style='color:#2e9d57'>●</span> No problems found.")
        kind = "error" if not info.runnable else ("warning" if info.problems else "ok")
        text = {"ok": f"{info.path} is ready.", "warning": f"{info.path} loads, with warnings below.",
                "error": f"{info.path} cannot run here: see the problems below."}[kind]
        self.banner.show_message(kind, text)
        self.layers.setModel(table_model(["Layer", "Operator", "Parameters", "Output shape"],
                                         [[layer.name, layer.op, layer.params,
                                           "" if layer.output_shape is None else
                                           " × ".join(str(d) for d in layer.output_shape)]
                                          for layer in info.layers]))
        self.ops.setModel(table_model(["Operator", "Count"], [[k, v] for k, v in info.ops.items()]))
        for view in (self.layers, self.ops):
            view.resizeColumnsToContents()
        self.summary.show()
        self.tabs.show()
        self.model_loaded.emit(info)

