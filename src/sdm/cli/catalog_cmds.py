"""Commands that read the catalog: search, info, catalog check."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sdm.cli import complete
from sdm.cli.base import app
from sdm.cli.output import echo, handle_errors, human_size, print_json, print_table
from sdm.errors import BadInput

if TYPE_CHECKING:
    from sdm.catalog.model import Catalog, Model

catalog_app = typer.Typer(help="Work with catalog files.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

TypeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--type",
        "-t",
        help="checkpoint, lora, embedding, hypernetwork or vae (repeatable).",
        show_default=False,
        autocompletion=complete.types,
    ),
]
BaseOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--base",
        "-b",
        help="Base family: sd15, sd2, sdxl, pony, flux1, ... (repeatable).",
        show_default=False,
        autocompletion=complete.bases,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def check_choices(values: list[str] | None, allowed: tuple[str, ...], what: str) -> list[str]:
    out = []
    for raw in values or []:
        for value in raw.split(","):
            value = value.strip().lower()
            # Accept plurals users type from folder names: loras, checkpoints.
            if value not in allowed and value.rstrip("s") in allowed:
                value = value.rstrip("s")
            if value not in allowed:
                raise BadInput(f"unknown {what} '{value}' (choose from: {', '.join(allowed)})")
            out.append(value)
    return out


@app.command(
    epilog="Examples:\n\n  sdm search realistic\n\n  sdm search anime --type checkpoint "
    "--base sd15\n\n  sdm search --type lora --json\n\n"
    "  sdm search 'detail tweaker' --online --type lora --base sdxl"
)
@handle_errors
def search(
    query: Annotated[str | None, typer.Argument(help="Words to look for; none lists the catalog.")] = None,
    type_: TypeOpt = None,
    base: BaseOpt = None,
    as_json: JsonOpt = False,
    online: Annotated[
        bool,
        typer.Option("--online", help="Also ask Civitai and Hugging Face (below the catalog's results)."),
    ] = False,
    nsfw: Annotated[
        bool, typer.Option("--nsfw", help="With --online: include NSFW results (hidden by default).")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", help="With --online: results per hub.", min=1, max=100)
    ] = 10,
) -> None:
    """Search the model catalog (works offline); --online adds live results from the hubs."""
    from sdm import api
    from sdm.catalog import BASES, MODEL_TYPES

    catalog = api.catalog()
    types = check_choices(type_, MODEL_TYPES, "type")
    # Bases are open-ended: those sdm knows, and any a catalog entry uses.
    bases = check_choices(base, (*BASES, *sorted({m.base for m in catalog} - set(BASES))), "base")
    results = api.search(query, types, bases)
    if online:
        _search_online(query, types, bases, results, as_json, nsfw, limit)
        return
    if as_json:
        from sdm.jsonout import model_summary

        print_json([model_summary(m) for m in results])
        return
    if not results:
        echo(
            f"No model matches '{query}'. Try fewer words, or: sdm search"
            if query
            else "The catalog is empty."
        )
        return
    rows = [[m.id, m.name, m.type, m.base, ", ".join(m.tags[:4])] for m in results]
    print_table(["ID", "NAME", "TYPE", "BASE", "TAGS"], rows)


def _search_online(
    query: str | None,
    types: list[str],
    bases: list[str],
    results: "list[Model]",
    as_json: bool,
    nsfw: bool,
    limit: int,
) -> None:
    from sdm import api
    from sdm.cli.base import settings
    from sdm.cli.output import warn
    from sdm.jsonout import hub_result_json, model_summary

    found = api.search_online(query, types, bases, nsfw=nsfw or None, limit=limit, settings=settings())
    if found.problems:
        warn("not every hub could be asked: " + "; ".join(found.problems))
    if as_json:
        print_json([*(model_summary(m) for m in results), *(hub_result_json(r) for r in found.results)])
        return
    if results:
        rows = [[m.id, m.name, m.type, m.base, ", ".join(m.tags[:4])] for m in results]
        print_table(["ID", "NAME", "TYPE", "BASE", "TAGS"], rows, title="In the catalog:")
    if found.results:
        echo() if results else None
        rows = [
            [
                r.spec,
                r.name,
                r.type or "?",
                r.base or "?",
                r.creator or "?",
                _popularity(r.downloads, r.likes),
                human_size(r.size),
            ]
            for r in found.results
        ]
        print_table(["SPEC", "NAME", "TYPE", "BASE", "BY", "POPULAR", "SIZE"], rows, title="On the hubs:")
    elif not results:
        echo(f"No model matches '{query}'." if query else "Nothing found.")


def _popularity(downloads: int | None, likes: int | None) -> str:
    def short(n: int) -> str:
        return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)

    parts = [f"{short(downloads)} downloads" if downloads else "", f"{short(likes)} likes" if likes else ""]
    return ", ".join(p for p in parts if p) or "-"


@app.command(
    epilog="Examples:\n\n  sdm info dreamshaper\n\n  sdm info sd15 --json\n\n"
    "  sdm info civitai://128713\n\n  sdm info hf://stabilityai/sdxl-vae --json"
)
@handle_errors
def info(
    model_id: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="Model id or alias; or civitai://VERSION, a Civitai URL, hf://ORG/REPO[/PATH].",
            autocompletion=complete.catalog_ids,
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Show everything the catalog (or, for a hub spec, the hub) knows about a model."""
    from sdm import api
    from sdm.hubinfo import is_remote
    from sdm.jsonout import model_json

    if is_remote(model_id):
        _remote_info(model_id, as_json)
        return
    model, origin = api.info(model_id)
    if as_json:
        print_json(model_json(model, origin))
        return
    _render_info(model, api.catalog())


def _remote_info(spec: str, as_json: bool) -> None:
    from sdm import api
    from sdm.cli.base import settings
    from sdm.jsonout import remote_model_json

    found = api.info_remote(spec, settings())
    if as_json:
        print_json(remote_model_json(found))
        return
    echo(found.name + (f" ({found.version})" if found.version else ""))
    if found.description:
        echo(found.description)
    echo()
    facts = [
        ("spec", found.spec),
        ("type", found.type or "unknown"),
        ("base", found.base or "unknown"),
        ("by", found.creator or "?"),
        ("license", found.license or "see the model's page"),
        ("page", found.url),
        ("trigger words", ", ".join(found.trigger_words) or "-"),
    ]
    if found.gated:
        facts.append(("gated", "yes: needs a login token, an accepted licence or early access"))
    if found.nsfw:
        facts.append(("nsfw", "yes"))
    print_table(["", ""], [[k, v] for k, v in facts], header=False)
    echo()
    rows = [
        [
            ("*" if f.default else "") + f.name,
            f.format or "?",
            f.precision or "?",
            human_size(f.size),
            (f.sha256 or "unknown")[:10],
            f.spec,
        ]
        for f in found.files
    ]
    print_table(["FILE", "FORMAT", "PRECISION", "SIZE", "SHA256", "SPEC"], rows)
    echo("* pulled by the spec above")


def _requires_rows(model: "Model", catalog: "Catalog") -> list[list[str]]:
    rows = []
    for required in model.requires:
        other_id, _, variant_name = required.partition(":")
        other = catalog.find(other_id)
        variant = (other.variant(variant_name) if variant_name else other.default) if other else None
        choices = f" (variants: {', '.join(v.name for v in other.variants)})" if other else ""
        size = human_size(variant.size) if variant else "?"
        rows.append([required, f"{other.type if other else '?'}, {size}{choices}"])
    return rows


def _type_words(model_type: str) -> str:
    """'diffusion_model: a diffusion model (UNet/transformer only)'; 'checkpoint' alone."""
    from sdm.vocab import TYPES

    info = TYPES.get(model_type)
    noun = info.noun.split(" ", 1)[-1] if info else model_type
    return (
        model_type
        if noun.lower() == model_type.replace("_", " ")
        else f"{model_type}: {info.noun if info else ''}"
    )


def _license_words(model: "Model") -> str:
    own = {v.license for v in model.variants if v.license and v.license != model.license}
    if own:  # versions under different licences: each is in the variant table
        return (
            f"{model.license}; some versions differ: see LICENSE below"
            if model.license
            else "per version: see LICENSE below"
        )
    return model.license or "see homepage"


def _render_info(model: "Model", catalog: "Catalog") -> None:
    facts = [
        ("id", model.id + (f"  (aliases: {', '.join(model.aliases)})" if model.aliases else "")),
        # "base" names the family; whether this is a base model or a fine-tune is its kind,
        # said in words so the two never read as "base, base flux1".
        ("type", _type_words(model.type)),
        ("base", model.base),
        ("tags", ", ".join(model.tags)),
        ("license", _license_words(model)),
        ("homepage", model.homepage or "-"),
    ]
    if model.type in ("checkpoint", "diffusion_model"):  # a VAE or LoRA is neither
        kind = "a base model, as released" if model.kind == "base" else f"a fine-tune of {model.base}"
        facts.insert(2, ("kind", kind))
    if model.nsfw:
        facts.append(("nsfw", "yes: may produce explicit images"))
    if model.gated:
        facts.append(("gated", "yes: accept the license on the homepage and set a token"))
    hints = model.hints
    hint_rows = [
        ("resolution", f"{hints.resolution}x{hints.resolution}" if hints.resolution else None),
        ("clip skip", str(hints.clip_skip) if hints.clip_skip else None),
        ("trigger words", ", ".join(hints.trigger_words) or None),
        ("negative prompt", hints.negative_prompt),
        ("use with", ", ".join(hints.companions) or None),
        ("lora weight", str(hints.weight) if hints.weight is not None else None),
        ("notes", hints.notes),
    ]
    echo(model.name)
    echo(model.description)
    echo()
    print_table(["", ""], [[k, v] for k, v in facts], header=False)
    echo()
    # Pruned, full or EMA-only tells checkpoints apart; for a VAE or an encoder it means nothing.
    weighed = any(v.weights for v in model.variants)
    licensed = any(v.license and v.license != model.license for v in model.variants)
    rows = []
    for v in model.variants:
        mark = "*" if v.name == model.default.name else ""
        rows.append(
            [
                mark + v.name,
                v.format + (" (pickle)" if v.is_pickle else ""),
                v.precision or "?",
                *([v.weights or "?"] if weighed else []),
                human_size(v.size),
                (v.sha256 or "unknown")[:10],
                *([model.license_of(v) or "?"] if licensed else []),
                v.source.describe(),
            ]
        )
    columns = [
        "VARIANT",
        "FORMAT",
        "PRECISION",
        *(["WEIGHTS"] if weighed else []),
        "SIZE",
        "SHA256",
        *(["LICENSE"] if licensed else []),
        "SOURCE",
    ]
    print_table(columns, rows)
    echo("* default variant")
    shown = [[k, v] for k, v in hint_rows if v]
    shown += [[f"load with ({ui})", how] for ui, how in hints.load_with.items()]
    needed = _requires_rows(model, catalog)
    if needed:
        echo()
        print_table(["REQUIRES", "(pulled with it unless --no-companions)"], needed)
    if shown:
        echo()
        print_table(["USAGE", ""], shown)


@catalog_app.command(
    "check",
    epilog="Examples:\n\n  sdm catalog check my-models.yaml\n\n"
    "  sdm catalog check            # the built-in and configured catalogs\n\n"
    "  sdm catalog check --online --json   # every source still serves what the catalog says",
)
@handle_errors
def catalog_check(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Catalog files or folders to check.", show_default=False)
    ] = None,
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Also ask every source (metadata only): moved, gone, now gated, size or hash changed.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate catalog files; exit 1 when any has a problem (or, with --online, a broken source)."""
    from sdm.catalog.load import build, builtin_dir, cross_check, expand, extra_sources

    files = expand(paths) if paths else expand([builtin_dir()]) + expand(extra_sources())
    if paths:
        # Companions may point into the built-in catalog, so check against it too.
        base_catalog, _ = build(expand([builtin_dir()]))
        catalog, problems = build(files)
        for model_id, model in catalog.models.items():
            base_catalog.add(model, catalog.origin[model_id])
        problems += [p for p in cross_check(base_catalog) if p.file in set(files)]
    else:
        catalog, problems = build(files)
        problems += cross_check(catalog)
    for problem in problems:
        typer.echo(f"sdm: error: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    if online:
        _check_online(catalog, as_json)
        return
    echo(f"ok: {len(catalog)} models in {len(files)} file(s)")


def _check_online(catalog: "Catalog", as_json: bool) -> None:
    from dataclasses import asdict

    from sdm.audit import check_online
    from sdm.cli.base import settings

    checks = check_online(catalog, settings().resolved())
    if as_json:
        print_json([{**asdict(c), "broken": c.broken} for c in checks])
    else:
        rows = [[c.status, f"{c.model}:{c.variant}", c.source, c.detail] for c in checks if c.status != "ok"]
        if rows:
            print_table(["STATUS", "VARIANT", "SOURCE", "DETAIL"], rows)
        broken = sum(c.broken for c in checks)
        echo(f"{len(checks)} sources checked: {len(checks) - len(rows)} ok, {broken} broken")
    if any(c.broken for c in checks):
        raise typer.Exit(1)
