"""The shapes model answers come back in, one JSONL line at a time (pure Python, no Spark).

Batch services and eval harnesses each wrap a model's answer in their own envelope:
OpenAI / vLLM / Together batch output (`custom_id`, `response.body.choices`), Anthropic
Message Batches results (`custom_id`, `result.type`), Bedrock batch output (`recordId`,
`modelOutput` or `error`), lm-evaluation-harness samples (`doc`, `resps`), and the plain
shapes (`custom_id` or question_id/participant_id with `content`, `text`, a distribution),
and inspect_ai eval-log samples (`id`, `epoch`, `output.choices`; `read_inspect_log` takes
them out of a `.eval` zip or a `--log-format=json` log, one JSON line each).
`read_line` finds the key and the answer in any of them and says what kind of answer
it is, so `wvb predictions import` can refuse a file that mixes kinds and interpret the
rest the same way whatever the tool. The request ids `wvb prompts` writes live here too:
both stages read them.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass
from typing import cast

# --------------------------------------------------------------------------- request ids

VARIANTS = {"with-demographics": "wd", "without-demographics": "nd"}
CUSTOM_ID_PREFIX = "wvb"
# How the request asked for the answer, as the id's optional last part: option
# log-probabilities with numbered (lp) or lettered (lpl) options, sample k of N (s<k>;
# `s` alone for one request asking for n samples), or a verbalised distribution (vd).
# No suffix: the free-text prompt.
ELICIT_CODES = ("lp", "lpl", "vd")
CUSTOM_ID_PATTERN = re.compile(r"^wvb-(.+?)-(\d+)-(wd|nd)(?:-(lp|lpl|vd|s\d*))?$")


def custom_id(question_id: str, d_interview: int, variant: str, elicit: str | None = None) -> str:
    """`wvb-<question_id>-<d_interview>-<wd|nd>[-<elicit>]`, e.g. wvb-Q1-156070594-wd-lp."""
    base = f"{CUSTOM_ID_PREFIX}-{question_id}-{int(d_interview)}-{VARIANTS[variant]}"
    return f"{base}-{elicit}" if elicit else base


def parse_custom_id(value: str) -> tuple[str, int, str] | None:
    """(question_id, d_interview, variant) from a custom_id, None if it is not one of ours."""
    match = CUSTOM_ID_PATTERN.match(value.strip()) if isinstance(value, str) and value else None
    if not match:
        return None
    codes = {code: name for name, code in VARIANTS.items()}
    return match.group(1), int(match.group(2)), codes[match.group(3)]


def elicitation_of(value) -> str | None:
    """The elicitation code of one of our custom_ids: lp, lpl, vd, s (any sample), or None."""
    match = CUSTOM_ID_PATTERN.match(value.strip()) if isinstance(value, str) and value else None
    code = match.group(4) if match else None
    return "s" if code and code.startswith("s") else code


# --------------------------------------------------------------------------- line kinds

# What a line holds. A file holds one kind of answer (failed and empty lines fit any):
#   text           one model text (a point score is read from it, or a verbalised distribution)
#   samples        several model texts for one (question, respondent): a distribution of them
#   top_logprobs   the first answer token's top log-probabilities
#   distribution   explicit probabilities / log-probabilities per scale point
#   loglikelihoods one log-likelihood per option (lm-evaluation-harness)
#   failed         the request failed (error, canceled, expired): no answer
#   empty          a JSON line with no answer where one was expected
#   not_json       not a JSON object
ANSWER_KINDS = ("text", "samples", "top_logprobs", "distribution", "loglikelihoods")
FITS_ANY = ("failed", "empty", "not_json")

# Forced formats (--format) and the kind of answer each reads.
FORMAT_KINDS = {
    "jsonl": "text",
    "verbalised": "text",
    "samples": "samples",
    "logprobs": "top_logprobs",
    "distribution": "distribution",
    "lm-eval": "loglikelihoods",
}

# Human names of the kinds, for messages.
KIND_NAMES = {
    "text": "model text",
    "samples": "several sampled answers (n > 1 choices)",
    "top_logprobs": "top log-probabilities",
    "distribution": "a distribution",
    "loglikelihoods": "lm-evaluation-harness log-likelihoods",
}


# The envelope a line came in (LineRecord.shape) -> the format it belongs to. A file holds
# one format: an Anthropic line among OpenAI lines is refused like a text among
# log-probabilities. An error-file line (`error`, no response) and a line that is not
# JSON belong to none and fit any file.
ENVELOPES = {
    "openai_chat": "openai",
    "openai_completion": "openai",
    "openai_responses": "openai",
    "anthropic": "anthropic",
    "bedrock": "bedrock",
    "lm_eval": "lm_eval",
    "inspect": "inspect",
    "plain": "plain",
}

# Human names of the formats, for messages.
ENVELOPE_NAMES = {
    "openai": "OpenAI / vLLM / Together batch output",
    "anthropic": "an Anthropic Message Batches result",
    "bedrock": "Bedrock batch output",
    "lm_eval": "an lm-evaluation-harness sample",
    "inspect": "an inspect_ai sample",
    "plain": "a plain line (key and answer as fields)",
}

# Formats whose model texts get the format before the way the score was found in
# parse_method (anthropic_json, bedrock_number_in_text, openai_none). Plain lines keep
# json / number_in_text / none; inspect texts are inspect_text.
TEXT_ENVELOPES = ("openai", "anthropic", "bedrock")


def text_method(envelope: str | None, how: str) -> str:
    """parse_method of a model text: `how` (json, number_in_text, none...) after the batch
    format it came in, so a model's rows say which service answered."""
    return f"{envelope}_{how}" if envelope in TEXT_ENVELOPES else how


@dataclass(frozen=True)
class LineRecord:
    """One JSONL line, read.

    kind: see ANSWER_KINDS / FITS_ANY. shape: the envelope (openai_chat, openai_completion,
    openai_responses, anthropic, bedrock, lm_eval, inspect, plain; error_line for a line of
    an error file, none for a line that is not JSON; see ENVELOPES). question_id / participant_id: the
    key as text (None when the line carries none). elicit: the code of the custom_id.
    payload: what to interpret (the text, or JSON). payload_kind: how (text, samples,
    top_logprobs, probabilities, logprobs, loglikelihoods). method: parse_method for
    distributions read from an envelope. raw: what goes to raw_score.
    """

    kind: str
    shape: str
    question_id: str | None = None
    participant_id: str | None = None
    elicit: str | None = None
    payload: str | None = None
    payload_kind: str | None = None
    method: str | None = None
    raw: str | None = None


class WrittenNumber(float):
    """A JSON number with a fraction or exponent that remembers how it was written: an id
    written 8.18070001E8 is no respondent id (ids are digits), though it equals one."""

    text: str

    def __new__(cls, text: str):
        number = super().__new__(cls, text)
        number.text = text
        return number


def _text(value) -> str | None:
    """A key value as text: numbers as written (156070594, not 156070594.0)."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    if isinstance(value, WrittenNumber):
        return value.text
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _get(obj, *path):
    for step in path:
        if isinstance(step, int):
            if not isinstance(obj, list) or len(obj) <= step:
                return None
        elif not isinstance(obj, dict) or step not in obj:
            return None
        obj = obj[step]
    return obj


def _content_text(content) -> str | None:
    """Chat message content: a string, or the text parts of a list of parts."""
    if isinstance(content, str) or content is None:
        return content
    if isinstance(content, list):
        parts = [cast(str, p.get("text")) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(parts) if parts else None
    return None


def _error_text(error) -> str:
    """A service's error object in a few words, for raw_score."""
    if isinstance(error, dict):
        inner = cast(dict, error.get("error")) if isinstance(error.get("error"), dict) else error
        words = [
            str(inner.get(k))
            for k in ("type", "code", "errorCode", "message", "errorMessage")
            if inner.get(k) not in (None, "")
        ]
        return ": ".join(dict.fromkeys(words)) or json.dumps(error)
    return str(error)


def _choice_logprobs(choice) -> tuple[str, list] | None:
    """(method, [(token, logprob)]) of a choice's first token: chat
    `logprobs.content[0].top_logprobs`, or the legacy completions
    `logprobs.top_logprobs[0]` ({token: logprob})."""
    logprobs = _get(choice, "logprobs")
    if not isinstance(logprobs, dict):
        return None
    content = logprobs.get("content")
    if isinstance(content, list):
        first = content[0] if content and isinstance(content[0], dict) else None
        if first is None:
            return "chat_logprobs", []
        top = first.get("top_logprobs")
        if isinstance(top, list) and top:
            return "chat_logprobs", [(t.get("token"), t.get("logprob")) for t in top if isinstance(t, dict)]
        return "chat_logprobs", [(first.get("token"), first.get("logprob"))]
    top = logprobs.get("top_logprobs")
    if isinstance(top, list):
        first = top[0] if top else None
        if isinstance(first, dict):
            return "completion_logprobs", list(first.items())
        tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
        if isinstance(tokens, list) and isinstance(values, list) and tokens:
            return "completion_logprobs", [(tokens[0], values[0])]
        return "completion_logprobs", []
    return None


def _choice_text(choice) -> str | None:
    message = _get(choice, "message")
    if isinstance(message, dict):
        return _content_text(message.get("content"))
    return _text(_get(choice, "text")) if isinstance(_get(choice, "text"), str) else None


def _from_openai_body(body, want: str | None) -> tuple[str, str, str | None, str | None, str | None]:
    """(kind, shape, payload, payload_kind, method) of an OpenAI-style response body."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if isinstance(choices, list) and choices:
        shape = "openai_chat" if isinstance(_get(choices[0], "message"), dict) else "openai_completion"
        if want == "samples" or (want is None and len(choices) > 1):
            texts = [_choice_text(c) for c in choices]
            return "samples", shape, json.dumps(texts), "samples", "samples"
        logprobs = _choice_logprobs(choices[0])
        if want == "top_logprobs" or (want is None and logprobs is not None and logprobs[1]):
            if logprobs is None:
                return (
                    "top_logprobs",
                    shape,
                    None,
                    "top_logprobs",
                    "chat_logprobs" if shape == "openai_chat" else "completion_logprobs",
                )
            return "top_logprobs", shape, json.dumps(logprobs[1]), "top_logprobs", logprobs[0]
        text = _choice_text(choices[0])
        return ("text" if text is not None else "empty"), shape, text, "text", None
    output = _get(body, "output")
    if isinstance(output, list):  # the Responses API in a batch
        texts = [
            part.get("text")
            for item in output
            if isinstance(item, dict)
            for part in (item.get("content") or [])
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        text = texts[0] if texts else None
        return ("text" if text is not None else "empty"), "openai_responses", text, "text", None
    return "empty", "openai_chat", None, "text", None


def _model_output_text(output) -> str | None:
    """The text of a Bedrock modelOutput: Anthropic messages, Converse, Llama, Mistral,
    Titan or Cohere bodies."""
    if not isinstance(output, dict):
        return None
    for path in (
        ("content",),
        ("output", "message", "content"),
        ("generation",),
        ("outputs", 0, "text"),
        ("results", 0, "outputText"),
        ("generations", 0, "text"),
        ("completion",),
        ("text",),
    ):
        value = _get(output, *path)
        text = _content_text(value) if isinstance(value, list) else value
        if isinstance(text, str):
            return text
    body_kind = _from_openai_body(output, "text")
    return body_kind[2]


def _lm_eval_loglikelihoods(obj) -> list | None:
    """Per option, the log-likelihood of an lm-evaluation-harness multiple-choice sample:
    `filtered_resps` ([loglik, is_greedy] per option) or `resps` ([[loglik, is_greedy]])."""
    for key in ("filtered_resps", "resps"):
        responses = obj.get(key)
        if not isinstance(responses, list) or not responses:
            continue
        values = []
        for entry in responses:
            while isinstance(entry, list) and entry and isinstance(entry[0], list):
                entry = entry[0]
            if isinstance(entry, list) and entry:
                entry = entry[0]
            values.append(entry)
        return values
    return None


def read_line(line: str, want: str | None = None, mapped_id: str | None = None) -> LineRecord:
    """Read one JSONL line. `want` is the kind a forced --format reads (None: whatever the
    line holds); `mapped_id` is our custom_id for a Bedrock recordId (from --inputs)."""
    try:
        obj = json.loads(line, parse_float=WrittenNumber)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        return LineRecord("not_json", "none", raw=line)

    inspect = is_inspect_sample(obj)
    custom, shape = _line_id(obj, inspect, mapped_id)
    question, participant = _line_keys(obj, custom, inspect)
    elicit = elicitation_of(custom)
    if want is None and elicit in ("lp", "lpl"):
        want = "top_logprobs"
    key = {"question_id": question, "participant_id": participant, "elicit": elicit}

    def answer(kind, shape_, payload=None, payload_kind="text", method=None, raw=None):
        if payload_kind == "top_logprobs" and elicit == "lpl":
            payload_kind = "top_logprobs_letters"
        return LineRecord(
            kind,
            shape_,
            payload=payload,
            payload_kind=payload_kind,
            method=method,
            raw=payload if raw is None else raw,
            **key,
        )

    if inspect:
        return _inspect_answer(obj, want, answer, elicit)

    return _envelope_answer(obj, shape, want, answer, key)


def _line_id(obj: dict, inspect: bool, mapped_id: str | None) -> tuple[str | None, str]:
    """The line's custom_id (ours, an inspect sample id, or a Bedrock recordId mapped
    through --inputs) and the envelope it came in."""
    custom = obj.get("custom_id")
    if inspect and custom is None:
        return _text(obj.get("id")), "inspect"
    if custom is None and "recordId" in obj:  # Bedrock batch output
        return mapped_id or _text(obj.get("recordId")), "bedrock"
    return custom, "plain"


def _line_keys(obj: dict, custom, inspect: bool) -> tuple[str | None, str | None]:
    """(question_id, participant_id): from our custom_id, else from the sample's metadata
    (inspect), its doc (lm-evaluation-harness) or plain fields."""
    parsed = parse_custom_id(custom) if isinstance(custom, str) else None
    if parsed:
        return parsed[0], str(parsed[1])
    if inspect and isinstance(obj.get("metadata"), dict):  # an inspect sample keyed by its metadata
        meta = obj["metadata"]
        return _text(meta.get("question_id")), _text(meta.get("d_interview", meta.get("participant_id")))
    if isinstance(obj.get("doc"), dict):  # lm-evaluation-harness sample
        doc = obj["doc"]
        return _text(doc.get("question_id")), _text(doc.get("d_interview", doc.get("participant_id")))
    question = _text(next((obj[k] for k in ("question_id", "QUESTION_ID") if k in obj), None))
    participant_keys = ("participant_id", "PARTICIPANT_ID", "d_interview", "D_INTERVIEW")
    return question, _text(next((obj[k] for k in participant_keys if k in obj), None))


def _envelope_answer(obj: dict, shape: str, want: str | None, answer, key: dict) -> LineRecord:
    """The answer of a line by its envelope: lm-evaluation-harness, explicit distributions,
    Anthropic, Bedrock, OpenAI/vLLM/Together batch output, error files, plain text."""
    # lm-evaluation-harness: the doc is ours, the answer one log-likelihood per option
    if isinstance(obj.get("doc"), dict) and ("resps" in obj or "filtered_resps" in obj):
        values = _lm_eval_loglikelihoods(obj)
        payload = json.dumps(values) if values else None
        return answer("loglikelihoods" if values else "empty", "lm_eval", payload, "loglikelihoods", "lm_eval")

    # explicit distributions (the plain shape)
    for name, kind in (("distribution", "probabilities"), ("probabilities", "probabilities"), ("logprobs", "logprobs")):
        if name in obj and not isinstance(obj.get("response"), dict):
            value = obj[name]
            payload = None if value is None else json.dumps(value)
            return answer("distribution" if payload else "empty", "plain", payload, kind, kind)

    # Anthropic Message Batches results
    result = obj.get("result")
    if isinstance(result, dict) and "type" in result:
        if result.get("type") != "succeeded":
            reason = result.get("type")
            if result.get("error") is not None:
                reason = f"{reason}: {_error_text(result.get('error'))}"
            return answer("failed", "anthropic", raw=f"anthropic {reason}")
        text = _content_text(_get(result, "message", "content"))
        return answer("text" if text is not None else "empty", "anthropic", text)

    # Bedrock batch output
    if shape == "bedrock":
        if obj.get("error") is not None and obj.get("modelOutput") is None:
            return answer("failed", "bedrock", raw=f"bedrock error: {_error_text(obj.get('error'))}")
        text = _model_output_text(obj.get("modelOutput"))
        return answer("text" if text is not None else "empty", "bedrock", text)

    # OpenAI / vLLM / Together batch output
    response = obj.get("response")
    if isinstance(response, dict):
        status = response.get("status_code")
        body = response.get("body")
        if (status is not None and status != 200) or not isinstance(body, dict):
            reason = _error_text(_get(body, "error") or obj.get("error") or f"status {status}")
            failed_methods: dict[str | None, str] = {"top_logprobs": "chat_logprobs", "samples": "samples"}
            method = failed_methods.get(want)
            return LineRecord(
                "failed",
                "openai_chat",
                payload=None,
                payload_kind=_payload_kind(want),
                method=method,
                raw=f"request failed: {reason}",
                **key,
            )
        # a forced kind this envelope cannot hold: say what the line does hold
        kind, shape_, payload, payload_kind, method = _from_openai_body(
            body, want if want in ("text", "samples", "top_logprobs") else None
        )
        return answer(kind, shape_, payload, payload_kind, method)
    if obj.get("error") is not None and response is None:  # an error-file line
        error_methods: dict[str | None, str] = {"top_logprobs": "chat_logprobs", "samples": "samples"}
        method = error_methods.get(want)
        return LineRecord(
            "failed",
            "error_line",
            payload_kind=_payload_kind(want),
            method=method,
            raw=f"request failed: {_error_text(obj.get('error'))}",
            **key,
        )

    # plain text shapes
    for name in ("content", "text"):
        if isinstance(obj.get(name), str):
            return answer("text", "plain", obj[name])
    if isinstance(response, str):
        return answer("text", "plain", response)
    return answer("empty", "plain", None)


def _inspect_answer(sample: dict, want: str | None, answer, elicit: str | None) -> LineRecord:
    """An inspect sample's answer: the first choice's top log-probabilities when it has
    them (or the id asked for them), else its text; a sample error is a failed record."""
    asked_logprobs = want == "top_logprobs" or elicit in ("lp", "lpl")
    method = "inspect_logprobs" if asked_logprobs else "inspect_text"
    output = cast(dict, sample.get("output")) if isinstance(sample.get("output"), dict) else {}
    choices = output.get("choices") if isinstance(output.get("choices"), list) else []
    error = sample.get("error")
    if error is not None or (not choices and output.get("error")):
        reason = _get(error, "message") if isinstance(error, dict) else error or output.get("error")
        return answer(
            "failed",
            "inspect",
            payload_kind="top_logprobs" if asked_logprobs else "text",
            method=method,
            raw=f"inspect error: {reason}",
        )
    first = choices[0] if choices else None
    logprobs = _choice_logprobs(first) if first is not None else None
    if asked_logprobs or (want is None and logprobs is not None and logprobs[1]):
        payload = json.dumps(logprobs[1]) if logprobs is not None and logprobs[1] else None
        return answer(
            "top_logprobs",
            "inspect",
            payload,
            "top_logprobs",
            "inspect_logprobs",
            raw=payload if payload is not None else _choice_text(first),
        )
    text = _choice_text(first) if first is not None else None
    if text is None and isinstance(output.get("completion"), str) and output["completion"]:
        text = output["completion"]
    return answer("text" if text is not None else "empty", "inspect", text, "text", "inspect_text")


def _payload_kind(want: str | None) -> str:
    kinds: dict[str | None, str] = {
        "top_logprobs": "top_logprobs",
        "samples": "samples",
        "loglikelihoods": "loglikelihoods",
        "distribution": "probabilities",
    }
    return kinds.get(want, "text")


def compatible(first_kind: str, kind: str) -> bool:
    """Whether a line of `kind` may sit in a file whose first answered line is `first_kind`."""
    return (
        kind in FITS_ANY
        or first_kind in FITS_ANY
        or kind == first_kind
        or {first_kind, kind} == {"text", "samples"}
        and first_kind == "samples"
    )


# --------------------------------------------------------------------------- inspect_ai logs

# Compression method 93 (zstandard): what recent inspect_ai versions write into a .eval;
# Python's zipfile reads it from 3.14 on, before that through the zstandard package.
ZIP_ZSTANDARD = 93
_LOCAL_HEADER = 30


def is_inspect_sample(obj) -> bool:
    """An inspect_ai eval-log sample: an id, an epoch and an output object."""
    return isinstance(obj, dict) and "id" in obj and "epoch" in obj and isinstance(obj.get("output"), dict)


def inspect_log_kind(path: str) -> str | None:
    """'eval' (a zip: inspect's default log format), 'json' (`--log-format=json`: one JSON
    object starting with inspect's `version` and `status`, pretty-printed or not) or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return "eval"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    if re.match(r'\s*\{\s*"version"\s*:\s*\d+\s*,\s*"status"\s*:', text):
        return "json"
    return None


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> bytes:
    """One member's bytes; zstandard members through the zstandard package where this
    Python's zipfile cannot decompress them."""
    try:
        return archive.read(info)
    except NotImplementedError:
        if info.compress_type != ZIP_ZSTANDARD:
            raise ValueError(
                f"{path}: {info.filename} uses zip compression method {info.compress_type}, "
                f"which this Python cannot read"
            ) from None
    try:
        import zstandard
    except ImportError:
        raise ValueError(
            f"{path}: this .eval log is zstandard-compressed (as recent inspect_ai versions write "
            f"it) and this Python's zipfile cannot read that: `pip install zstandard`, or convert "
            f"the log: inspect log convert --to json {path} --output-dir DIR"
        ) from None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(_LOCAL_HEADER)
        name_length = int.from_bytes(header[26:28], "little")
        extra_length = int.from_bytes(header[28:30], "little")
        handle.seek(info.header_offset + _LOCAL_HEADER + name_length + extra_length)
        compressed = handle.read(info.compress_size)
    reader = zstandard.ZstdDecompressor().stream_reader(compressed, read_across_frames=True)
    return reader.read()


def _sample_order(samples: list[dict], eval_spec) -> list[dict]:
    """Samples in the dataset's order, then by epoch (a .eval keeps them in the order they
    finished), so record numbers and which record counts as first do not depend on timing."""
    ids = _get(eval_spec, "dataset", "sample_ids")
    position = {str(sample_id): i for i, sample_id in enumerate(ids)} if isinstance(ids, list) else {}
    return sorted(
        samples,
        key=lambda s: (
            position.get(str(s.get("id")), len(position)),
            str(s.get("id")),
            s.get("epoch") if isinstance(s.get("epoch"), int) else 0,
        ),
    )


def read_inspect_log(path: str, kind: str) -> tuple[list[dict], str]:
    """(samples, log status) of an inspect_ai log, kind 'eval' or 'json'. A log without
    samples (run with --no-log-samples, or one that failed before any ran) is an error
    naming its status: there is nothing to import."""
    name = os.path.basename(path)
    if kind == "eval":
        try:
            with zipfile.ZipFile(path) as archive:
                members = {info.filename: info for info in archive.infolist()}
                if "header.json" in members:
                    header = json.loads(_zip_member(archive, members["header.json"], path))
                elif "_journal/start.json" in members:
                    header = json.loads(_zip_member(archive, members["_journal/start.json"], path))
                else:
                    raise ValueError(
                        f"{path}: a zip without header.json or _journal/start.json is not an inspect_ai .eval log"
                    )
                samples = [
                    json.loads(_zip_member(archive, info, path))
                    for filename, info in members.items()
                    if filename.startswith("samples/") and filename.endswith(".json")
                ]
        except zipfile.BadZipFile as error:
            raise ValueError(f"{path}: not a readable .eval (zip) log: {error}") from None
    else:
        try:
            with open(path, encoding="utf-8") as handle:
                header = json.load(handle)
        except ValueError as error:
            raise ValueError(f"{path}: not a JSON inspect_ai log: {error}") from None
        if not isinstance(header, dict) or not isinstance(header.get("eval"), dict):
            raise ValueError(f"{path}: not an inspect_ai log (no `eval` object at the top)")
        samples = header.get("samples") or []
    status = str(header.get("status", "unknown"))
    if not isinstance(samples, list) or not samples:
        reason = _get(header, "error", "message")
        raise ValueError(
            f"{name} holds no samples (log status {status}{': ' + str(reason) if reason else ''}); nothing to import"
        )
    bad = next((i for i, s in enumerate(samples) if not is_inspect_sample(s)), None)
    if bad is not None:
        raise ValueError(f"{name}: sample {bad + 1} is not an inspect sample (needs id, epoch and output)")
    return _sample_order(samples, header.get("eval")), status


def inspect_line(sample: dict) -> str:
    """The parts of an inspect sample the import reads, as one JSON line (messages, events
    and attachments can be large and are not needed)."""
    output = sample.get("output") or {}
    kept = {
        "id": sample.get("id"),
        "epoch": sample.get("epoch"),
        "metadata": sample.get("metadata"),
        "output": {key: output.get(key) for key in ("choices", "completion", "error") if key in output},
        "error": sample.get("error"),
    }
    return json.dumps(kept)
