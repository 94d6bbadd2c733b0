"""A network as an ONNX graph that runs in ONNX Runtime (or any ONNX runtime) with no project code.

lc0 and KataGo ship their nets as ONNX so other programs can use them; so does this project.
The graph is the inference net (BatchNorm folded into the convolutions) with the value head's
softmax and the scalar value inside it, so a user feeds planes and reads probabilities:

- input `planes`: float32 (batch, 22, 8, 8), the position from the side to move (see
  `INPUT_PLANES`; the batch dimension is dynamic);
- output `policy_logits`: float32 (batch, 1858), one logit per entry of the move table
  (`MOVE_TABLE`, from White's side: for Black to move, mirror the ranks of both squares);
- output `wdl`: float32 (batch, 3), P(win), P(draw), P(loss) for the side to move;
- output `value`: float32 (batch,), P(win) - P(loss).

The model's metadata (`metadata_props`) carries the weights header (preset, generation,
encoding version, seed, format) and the two descriptions above, `input_planes` and
`move_table` (a JSON list of 1858 UCI moves), so the file explains itself. The project's own
ONNX Runtime backend (`inference.py`) evaluates the same graph.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from pathlib import Path

import chess
import torch
from torch import nn

from service.engine.encoding import ENCODING_VERSION, NUM_PLANES, POLICY_MOVES, POLICY_SIZE
from service.engine.network import ChessNet, fold_batchnorm, load_weights, write_durably

INPUT_NAME = "planes"
OUTPUT_NAMES = ("policy_logits", "wdl", "value")
OPSET = 18

INPUT_PLANES = (
    "float32 (batch, 22, 8, 8), squares a1..h8 as [rank][file] from the side to move (the board "
    "is flipped vertically when Black is to move). Planes 0-5: our pawns, knights, bishops, "
    "rooks, queens, king; 6-11: theirs; 12: position seen once before; 13: seen twice or more; "
    "14-17: our king-side, our queen-side, their king-side, their queen-side castling right "
    "(all ones or zeros); 18: en-passant target square; 19: fifty-move counter / 100 (constant "
    "plane); 20: ones when Black is to move; 21: all ones."
)

MOVE_TABLE = [chess.Move(f, t, p).uci() if p is not None else chess.Move(f, t).uci() for f, t, p in POLICY_MOVES]
"""The 1858 policy entries as UCI moves from White's side (a queen promotion is the plain
pawn move, e.g. `a7a8`; under-promotions carry their piece)."""
assert len(MOVE_TABLE) == POLICY_SIZE


class _InferenceGraph(nn.Module):
    """The folded net with the value head's softmax and the scalar value: what gets exported."""

    def __init__(self, net: ChessNet) -> None:
        super().__init__()
        self.net = fold_batchnorm(net).eval()

    def forward(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        policy, wdl_logits = self.net(planes)
        wdl = torch.softmax(wdl_logits, dim=1)
        return policy, wdl, wdl[:, 0] - wdl[:, 2]


def metadata(header: dict) -> dict[str, str]:
    """The ONNX `metadata_props` for a net with weights header `header` (all values strings)."""
    props = {
        key: str(header[key]) for key in ("preset", "generation", "encoding_version", "seed", "format") if key in header
    }
    props.setdefault("encoding_version", str(ENCODING_VERSION))
    props["input_planes"] = INPUT_PLANES
    props["move_table"] = json.dumps(MOVE_TABLE)
    props["outputs"] = "policy_logits (batch, 1858); wdl (batch, 3) P(win, draw, loss); value (batch,) P(win) - P(loss)"
    return props


def onnx_bytes(net: ChessNet, header: dict | None = None) -> bytes:
    """The ONNX file of `net` (a copy is folded; `net` itself is untouched) with `header`'s metadata.

    torch's torch.export-based exporter (the supported one since torch 2.9); its progress lines
    and warnings are silenced: they are about the exporter, not about the net.
    """
    import onnx  # imported here: only export and the ONNX Runtime backend need it

    graph = _InferenceGraph(net.to("cpu"))
    example = torch.zeros(2, NUM_PLANES, 8, 8)
    batch = torch.export.Dim("batch", min=1, max=65536)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes=({0: batch},),
                opset_version=OPSET,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    assert program is not None
    model = program.model_proto
    for key, value in metadata(header or {"preset": net.preset}).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    model.producer_name = "continuous-play"
    buffer = io.BytesIO()
    onnx.save_model(model, buffer)
    return buffer.getvalue()


def save(data: bytes, path: str | os.PathLike) -> None:
    """Write an ONNX file's bytes at `path` durably and atomically (a reader never sees half)."""

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    write_durably(Path(path), write)


def export_checkpoint(weights: str | os.PathLike, output: str | os.PathLike) -> dict[str, str]:
    """Write the ONNX file of a weights file (atomically) and return its metadata."""
    net, header = load_weights(weights)
    save(onnx_bytes(net, header), output)
    return metadata(header)
