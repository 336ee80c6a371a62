"""Writes the generated documentation pages (register map, wire examples, performance tables)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import yaml


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """A reST list-table."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [headers, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("*", r"\*").replace("`", "'").replace("|", r"\|")


def register_map_page() -> str:
    from bss2.hal.regmap import REGISTER_MAP

    out = [
        "Register map",
        "============",
        "",
        "Generated from ``hal/registers.yaml``, the single source of the register layout. Addresses are",
        "24-bit word addresses, each word holds 32 bits. The address of word *w* of instance *i* is",
        "``base + i * instance_stride + w * word_stride``.",
        "",
        _table(
            ["block", "base", "instances (coordinate)", "words", "access", "container"],
            [
                [f"`{b.name}`_", f"``{b.base:#08x}``", f"{b.count} (``{b.coordinate.__name__}``)", str(b.words), b.access, f"``{b.container}``"]
                for b in sorted(REGISTER_MAP, key=lambda b: b.base)
            ],
        ),
    ]
    for block in sorted(REGISTER_MAP, key=lambda b: b.base):
        out += [
            "",
            block.name,
            "-" * len(block.name),
            "",
            _escape(block.doc),
            "",
            f"Base ``{block.base:#08x}``, last address ``{block.last_address:#08x}``, {block.count} instances of "
            f"{block.words} word(s) (instance stride {block.instance_stride}, word stride {block.word_stride}), "
            f"access ``{block.access}``, container :class:`bss2.hal.containers.{block.container}`.",
            "",
            _table(
                ["field", "word", "bits", "kind", "range", "default", "meaning"],
                [
                    [
                        f"``{f.name}``",
                        str(f.word),
                        f"{f.offset + f.width - 1}..{f.offset}" + (f" (x{f.repeat}, stride {f.stride})" if f.repeat > 1 else ""),
                        f.kind + (f" ``{f.enum_type.__name__}``" if f.enum_type else ""),
                        f"{f.low}..{f.high}",
                        f"``{f.default}``",
                        _escape(f.doc),
                    ]
                    for f in block.fields
                ],
            ),
        ]
    out += ["", "Enums", "-----", ""]
    for name, enum_type in REGISTER_MAP.enums.items():
        out += [f"``{name}``: " + ", ".join(f"{m.name} = {int(m)}" for m in enum_type), ""]
    out += ["", "CapMem rows", "-----------", "", "Per-neuron rows (columns 0..127 of each block):", ""]
    out.append(_table(["row", "name", "nominal", "meaning"], [[str(r.row), f"``{r.name}``", str(r.nominal), _escape(r.doc)] for r in REGISTER_MAP.capmem_neuron_rows]))
    out += ["", "Shared rows (column 128):", ""]
    out.append(_table(["row", "name", "nominal", "meaning"], [[str(r.row), f"``{r.name}``", str(r.nominal), _escape(r.doc)] for r in REGISTER_MAP.capmem_shared_rows]))
    return "\n".join(out) + "\n"


def wire_examples_page() -> str:
    examples = yaml.safe_load(resources.files("bss2.hal").joinpath("wire_examples.yaml").read_text())
    out = []
    for title, key in (("Instruction examples", "instructions"), ("Response examples", "responses")):
        out += [title, "^" * len(title), ""]
        out.append(
            _table(
                ["type", "encoder call (``bss2.hal.wire``)", "words", "meaning"],
                [[e["name"], f"``{e['call']}``", " ".join(f"``{w:#018x}``" for w in e["words"]), _escape(e["meaning"])] for e in examples[key]],
            )
        )
        out.append("")
    return "\n".join(out)


def performance_page(bench_dir: Path) -> str:
    out = [
        "Measured figures",
        "================",
        "",
        "Generated from the JSON files that the benchmark scripts under ``tests/benchmarks/`` write with",
        "``--json``; the files in ``docs/benchmarks/`` are full (non-quick) runs on the project's reference",
        "machine (2 cores). Regenerate them with ``make benchmarks``.",
        "",
    ]
    files = sorted(bench_dir.glob("*.json"))
    if not files:
        out.append("No benchmark results have been recorded yet.")
    for path in files:
        document = json.loads(path.read_text())
        name = str(document.get("benchmark", path.stem))
        machine = document.get("machine", document.get("meta", {}))
        out += [name, "-" * len(name), ""]
        if machine:
            out += [f"Machine: ``{machine}``", ""]
        results = document.get("results", document)
        if isinstance(results, list):
            results = {"results": results}
        scalars: list[list[str]] = []
        for section, rows in results.items():
            if isinstance(rows, list) and rows and isinstance(rows[0], dict):
                headers = list(rows[0])
                out += [f"**{section}**", ""]
                out.append(_table(headers, [[_cell(row.get(h)) for h in headers] for row in rows]))
                out.append("")
            elif isinstance(rows, dict):
                flat = _flatten(rows)
                if flat:
                    out += [f"**{section}**", ""]
                    out.append(_table(["figure", "value"], [[_escape(k), _cell(v)] for k, v in flat]))
                    out.append("")
            elif section not in ("benchmark", "machine", "meta") and not isinstance(rows, list):
                scalars.append([_escape(section), _cell(rows)])
        if scalars:
            out.append(_table(["figure", "value"], scalars))
            out.append("")
    return "\n".join(out) + "\n"


def _flatten(values: dict, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, scalar) pairs of a nested dict (lists are left out)."""
    flat: list[tuple[str, object]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat += _flatten(value, name + ".")
        elif not isinstance(value, list):
            flat.append((name, value))
    return flat


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _escape(str(value))


def generate_all(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    pages = {
        "register_map.rst": register_map_page(),
        "wire_examples.rst": wire_examples_page(),
        "performance_tables.rst": performance_page(Path(__file__).resolve().parent / "benchmarks"),
    }
    for name, text in pages.items():
        path = target / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
