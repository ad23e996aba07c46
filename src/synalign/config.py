"""One typed configuration for a run, loaded from TOML and overridable by `key=value` items."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from synalign.config_base import Section as _Section
from synalign.config_paths import check_folder, check_run_name, check_seed
from synalign.config_retrieval import RetrievalConfig
from synalign.errors import ConfigError


class DataConfig(_Section):
    """Where the real labelled texts come from: a bundled corpus or the user's file."""

    dataset: str | None = Field(
        None, description="Bundled corpus name (see `synalign datasets list`)."
    )
    path: str | None = Field(
        None, description="JSONL, CSV, TSV, Parquet file or Hugging Face datasets folder."
    )
    text_column: str = Field("text", description="Column holding the text.")
    label_column: str = Field("label", description="Column holding the label.")
    split: Literal["train", "test", "all", "pool", "validation"] = Field(
        "train",
        description="Split of a bundled corpus to draw the real examples from ('pool' and "
        "'validation' divide 'train', for choosing settings without the test split).",
    )
    shots: int | None = Field(
        None, gt=0, description="Real examples drawn per label (few-shot setting); all if unset."
    )
    item_name: str | None = Field(
        None, description="Noun for one text in prompts, e.g. 'movie review'."
    )
    label_descriptions: dict[str, str] = Field(
        default_factory=dict, description="Label -> words used for it in prompts."
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.dataset and self.path:
            raise ValueError("set either data.dataset or data.path, not both")
        return self


class EmbedConfig(_Section):
    """The embedder shared by exploration and alignment."""

    model: str = Field(
        "all-MiniLM-L6-v2",
        description="'all-MiniLM-L6-v2' (bundled) or a local sentence-transformers folder.",
    )
    batch_size: int = Field(64, gt=0, description="Texts per encoding batch.")


class LLMConfig(_Section):
    """The generator and how it is sampled."""

    backend: Literal["llamacpp", "openai"] = Field(
        "llamacpp",
        description="'llamacpp' (local GGUF, the bundled model by default) or 'openai' "
        "(any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, llama.cpp server).",
    )
    model_path: str | None = Field(
        None, description="GGUF file for llamacpp; the bundled Gemma 3 270M base model if unset."
    )
    model: str | None = Field(
        None, description="openai: the model name; llamacpp: a named generator (see README)."
    )
    base_url: str | list[str] | None = Field(
        None,
        description="Endpoint for the openai backend; $OPENAI_BASE_URL if unset. A list of "
        "endpoints serving the same model spreads the requests over them (executor 'ray').",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key."
    )
    api_key: SecretStr | None = Field(
        None,
        exclude=True,
        description="API key (prefer api_key_env); never written to the run directory.",
    )
    prompt_family: str = Field(
        "auto",
        description="'completion' for base models, 'chat' for instruction models; "
        "'auto': chat for the openai backend and for GGUF models with a chat template; "
        "or the name of a family added with register_prompt_family.",
    )
    temperature: float = Field(0.9, ge=0, description="Sampling temperature.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass.")
    min_p: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Minimum token probability; 0.05 for llamacpp if unset, not sent to "
        "openai endpoints unless set (OpenAI itself does not take it).",
    )
    max_tokens: int | None = Field(
        None, gt=0, description="Tokens per sample; derived from the real texts' length if unset."
    )
    n_ctx: int = Field(2048, gt=0, description="Context window for the local model.")
    threads: int | None = Field(None, gt=0, description="CPU threads; all cores if unset.")
    parallel_samples: int = Field(
        32,
        gt=0,
        le=64,
        description="Local model: samples decoded together, of any prompts of a stage "
        "(each prompt is read once); 1 decodes them one by one. The same seed gives the "
        "same samples whatever this is.",
    )
    concurrency: int = Field(8, gt=0, description="Requests in flight at once (openai).")
    timeout: float = Field(120.0, gt=0, description="Seconds before a request is retried.")
    max_retries: int = Field(8, ge=0, description="Retries per request on transient errors.")
    price_input_per_million: float | None = Field(
        None, ge=0, description="Price per million prompt tokens, to report cost."
    )
    price_output_per_million: float | None = Field(
        None, ge=0, description="Price per million generated tokens, to report cost."
    )

    @field_validator("prompt_family", mode="before")
    @classmethod
    def _known_family(cls, value: Any) -> Any:
        """'auto' or a registered family: families can be added, so the choice is not fixed."""
        from synalign.lar.prompts import prompt_family_names

        names = ("auto", *prompt_family_names())
        if value in names or isinstance(value, bool):  # a bool is refused as not a number
            return value
        *rest, last = (repr(n) for n in names)
        expected = f"{', '.join(rest)} or {last}"
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": expected}
        )

    @model_validator(mode="after")
    def _openai_needs_model(self) -> LLMConfig:
        if self.backend == "openai" and not self.model:
            raise ValueError("the openai backend needs llm.model")
        return self


class ExploreConfig(_Section):
    """ESM: which real examples become demonstrations."""

    method: Literal["gp", "random"] = Field(
        "gp", description="'gp': Gaussian-process exploration; 'random': random demonstrations."
    )
    cluster_size: int = Field(3, gt=0, description="Real examples per demonstration cluster.")
    bandwidth: float | None = Field(
        None, gt=0, description="RBF length scale; median heuristic if unset."
    )
    noise: float = Field(1e-4, gt=0, description="GP noise added to the kernel diagonal.")


class GenerateConfig(_Section):
    """LAR: attribute reasoning and attribute-conditioned writing."""

    samples_per_label: int = Field(
        160,
        gt=0,
        description="Candidate samples written per label (160: 10x the default 16 shots, "
        "where the validation budget curves still rose).",
    )
    samples_per_cluster: int = Field(5, gt=0, description="Samples written per demo cluster.")
    attributes: bool = Field(
        True, description="Ask for the cluster's latent attributes before writing."
    )
    min_words: int = Field(4, ge=1, description="Reject samples shorter than this.")
    max_words: int | None = Field(
        None, gt=0, description="Reject longer samples; twice the longest real text if unset."
    )
    near_copy: float = Field(
        0.8, gt=0, le=1, description="Similarity to a demonstration at which a sample is a copy."
    )
    label_check: Literal["auto", "combined", "llm", "classifier", "knn", "none"] = Field(
        "auto",
        description="Reject samples whose label the real texts contradict: 'llm' (the "
        "generator's own few-shot label likelihood, calibrated), 'classifier' (logistic "
        "regression on the real embeddings), 'combined' (the mean of the two judges' "
        "probabilities), 'knn' (nearest real texts), 'none', or 'auto' (combined when the "
        "backend exposes token probabilities, i.e. local llama.cpp, else classifier).",
    )
    label_check_threshold: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Keep a sample when the judge gives its label at least this share of the "
        "top label's probability (1: only samples the judge assigns to their own label). "
        "Unset: chosen per run from the real texts (see label_check_quantile); where a "
        "label has too few real texts for that, 0.7 for combined, 0.3 for llm, 0.9 for "
        "classifier and knn.",
    )
    label_check_quantile: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="With label_check_threshold unset, the threshold is this quantile of "
        "the real texts' own label scores (each judged out of fold, by judges that did not "
        "see it): a sample is rejected only when it reads less like its label than all but "
        "this share of the real texts, so a judge that knows the labels well is strict and "
        "one that does not is lenient.",
    )


class AlignConfig(_Section):
    """SDA: MMD weights and resampling."""

    enabled: bool = Field(True, description="Learn MMD weights; uniform weights if false.")
    bandwidth: float | None = Field(
        None, gt=0, description="RBF length scale; median heuristic if unset."
    )
    size_per_label: int | None = Field(
        None,
        gt=0,
        description="Aligned samples drawn per label; if unset, as many as were accepted in "
        "all, split between labels like the real texts.",
    )
    ess_floor: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Least effective sample size of each label's weights, as a share of its "
        "synthetic samples (MMD weights otherwise collapse onto a few samples); 0: no floor, "
        "1: equal weights.",
    )
    scope: Literal["label", "joint"] = Field(
        "label",
        description="'label': match each label's synthetic set to that label's real texts; "
        "'joint': match all synthetic texts to all real texts, then renormalise per label.",
    )


class RunConfig(_Section):
    """Everything a run needs; written resolved to the run directory as config.toml."""

    name: str = Field("run", description="Run name: the folder under runs_dir.")
    runs_dir: str = Field("runs", description="Parent folder of run directories.")
    seed: int = Field(0, description="Seed for every random choice in the run.")
    task: Literal["classification", "retrieval"] = Field(
        "classification",
        description="'classification': labelled texts; 'retrieval': queries for corpus "
        "documents (see [retrieval]).",
    )
    executor: Literal["local", "ray"] = Field(
        "local",
        description="'local': this process; 'ray': LLM calls and embedding batches run on a "
        "Ray cluster (pip install 'synalign[ray]'); the outputs are the same.",
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster to join ('auto', or HOST:6379); $RAY_ADDRESS, else a Ray "
        "instance on this machine, if unset.",
    )
    ray_actors: int | None = Field(
        None,
        gt=0,
        description="LLM workers on the cluster; one per node (llamacpp) or per endpoint "
        "(openai) if unset.",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    explore: ExploreConfig = Field(default_factory=ExploreConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    align: AlignConfig = Field(default_factory=AlignConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return check_run_name(value)

    @field_validator("runs_dir")
    @classmethod
    def _folder(cls, value: str) -> str:
        return check_folder(value)

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int) -> int:
        return check_seed(value)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


_SECTIONS = (
    DataConfig,
    EmbedConfig,
    LLMConfig,
    ExploreConfig,
    GenerateConfig,
    AlignConfig,
    RetrievalConfig,
)


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(_known_keys(ann, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _suggest(key: str) -> str:
    """The closest known key: the same name in another section, else the nearest spelling."""
    known = _known_keys(RunConfig)
    sections = [n for n, f in RunConfig.model_fields.items() if f.annotation in _SECTIONS]
    top = [k for k in known if "." not in k]
    section, _, leaf = key.rpartition(".")
    moved = [k for k in known if k.rsplit(".", 1)[-1] == leaf and k != key]
    if moved:
        return f"; did you mean '{moved[0]}'?"
    if not section:
        close = difflib.get_close_matches(key, top + sections, n=1)
        if close:
            return f"; did you mean '{close[0]}'?"
        return f"; top-level keys are {', '.join(top)} and the sections {', '.join(sections)}"
    if section in sections:
        names = [k.split(".", 1)[1] for k in known if k.startswith(section + ".")]
        close = difflib.get_close_matches(leaf, names, n=1)
        if close:
            return f"; did you mean '{section}.{close[0]}'?"
        return f"; keys in [{section}] are {', '.join(names)}"
    close = difflib.get_close_matches(section, sections, n=1)
    if close:
        return f"; did you mean '{close[0]}.{leaf}'?"
    return f"; the sections are {', '.join(sections)}"


def _explain(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown config key '{key}'{_suggest(key)}"
    return f"{source}: config key '{key}': {first['msg']} (got {first.get('input')!r})"


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=value`: the value is read as a TOML literal, else kept as a string."""
    if "=" not in item:
        raise ConfigError(
            f"override {item!r}: expected KEY=VALUE, e.g. generate.samples_per_label=20"
        )
    key, raw = item.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def build_config(
    data: dict[str, Any] | None = None, overrides: list[str] | None = None, source: str = "config"
) -> RunConfig:
    """Merge a config dict with `key=value` overrides and validate it into a RunConfig."""
    merged: dict[str, Any] = _deep_copy(data or {})
    for item in overrides or []:
        path, value = parse_override(item)
        node = merged
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: '{part}' is not a section")
            node = child
        node[path[-1]] = value
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_explain(err, source)) from err


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """A TOML config file's RunConfig; relative input paths in it are read from its folder."""
    from synalign.config_files import paths_from_folder, read_config_file

    p = Path(path)
    bundled = {EmbedConfig.model_fields["model"].default}
    data = paths_from_folder(read_config_file(p), p, bundled)
    return build_config(data, overrides, source=str(p))


def _deep_copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}
