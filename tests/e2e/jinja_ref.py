#!/usr/bin/env python3
"""Reference renderer for chat templates: Python's jinja2 configured exactly as
Hugging Face transformers configures it in apply_chat_template
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
transformers' tojson / raise_exception / strftime_now), with the request
normalisation Silica documents in docs/chat.md (text parts joined with "\\n",
null content kept as None, tool-call arguments parsed from their JSON string,
and the fallback variants when that fails to render).

usage: jinja_ref.py TEMPLATE_FILE REQUEST_JSON [--bos T] [--eos T] [--now EPOCH]
       jinja_ref.py --expr 'TEMPLATE SOURCE' VARS_JSON   (raw variables, no normalisation)
       jinja_ref.py --batch JOBS.jsonl                     ("-" = stdin)

Batch mode renders many requests in one process. Each input line is a JSON
object {"template": FILE | "source": TEXT, "request": {...}, "bos", "eos",
"now"}; each output line is {"ok": true, "out": PROMPT} or {"ok": false,
"error": MESSAGE}, in input order (the same shape `silica chat-template
--batch` writes).

Prints the prompt to stdout with no added newline; on a template error prints
"ERROR: <message>" to stderr and exits 1.
"""
import datetime
import json
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def make_env(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # transformers' binding: unlike jinja2's own tojson, no HTML escaping
        # and ensure_ascii=False by default.
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        t = datetime.datetime.fromtimestamp(now) if now else datetime.datetime.now()
        return t.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


NULL_EMPTY = 1   # variant: null content becomes ""
ARGS_STRING = 2  # variant: tool-call arguments stay the JSON string
TOOL_DESC = 4    # variant: a function without a description gets ""


def normalise_tools(tools, mode=0, seen=None):
    """The tools as the template sees them; with TOOL_DESC a function that
    has no description gets "" (seen collects "desc" when that differs)."""
    seen = seen if seen is not None else set()
    if not isinstance(tools, list):
        return tools
    out = []
    for t in tools:
        t = json.loads(json.dumps(t))
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict) and "description" not in fn:
            seen.add("desc")
            if mode & TOOL_DESC:
                fn["description"] = ""
        out.append(t)
    return out


def normalise(messages, mode=0, seen=None):
    """The messages as the template sees them. mode 0 is what transformers
    (with vLLM's parsing of tool-call arguments) passes: null content stays
    None. The variants are only used when mode 0 fails to render (see
    render_request). seen collects "null" / "args" when a variant would
    differ."""
    seen = seen if seen is not None else set()
    out = []
    for m in messages:
        m = dict(m)
        c = m.get("content")
        if isinstance(c, list):
            m["content"] = "\n".join(p["text"] for p in c)
        elif "content" in m and c is None:
            seen.add("null")
            if mode & NULL_EMPTY:
                m["content"] = ""
        calls = m.get("tool_calls")
        if isinstance(calls, list):
            new_calls = []
            for tc in calls:
                tc = json.loads(json.dumps(tc))
                fn = tc.get("function")
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    try:
                        parsed = json.loads(fn["arguments"])
                        if isinstance(parsed, dict):
                            seen.add("args")
                            if not mode & ARGS_STRING:
                                fn["arguments"] = parsed
                    except ValueError:
                        pass
                new_calls.append(tc)
            m["tool_calls"] = new_calls
            # a tool-call turn's reasoning_content is also `thinking` (gpt-oss)
            rc = m.get("reasoning_content")
            if new_calls and isinstance(rc, str) and "thinking" not in m and m.get("role") == "assistant":
                m["thinking"] = rc
        out.append(m)
    return out


def render_request(env, source, req, bos, eos, compiled=None):
    """Renders with null content as None and parsed arguments; when that
    fails, tries arguments as strings, then null content as "", then both,
    then the same four with "" for missing tool descriptions (only variants
    that differ); the first that renders wins, else the first error is
    raised. Silica's chat_render does the same."""
    seen = set()
    first = None
    for mode in range(8):
        mode = [0, ARGS_STRING, NULL_EMPTY, NULL_EMPTY | ARGS_STRING][mode & 3] | (mode & TOOL_DESC)
        if mode and ((mode & NULL_EMPTY and "null" not in seen) or (mode & ARGS_STRING and "args" not in seen)
                     or (mode & TOOL_DESC and "desc" not in seen)):
            continue
        try:
            messages = normalise(req["messages"], mode, seen)
            tools = normalise_tools(req.get("tools"), mode, seen)
            return render_variant(env, source, req, bos, eos, compiled, messages, tools)
        except Exception as e:  # noqa: BLE001 - any template failure triggers the next variant
            if first is None:
                first = e
    raise first


def render_variant(env, source, req, bos, eos, compiled, messages, tools):
    variables = {
        "messages": messages,
        "tools": tools,
        "documents": None,
        "add_generation_prompt": req.get("add_generation_prompt", True),
        "bos_token": bos,
        "eos_token": eos,
    }
    kwargs = req.get("chat_template_kwargs") or {}
    # reasoning_effort (OpenAI's parameter) -> the template variable
    effort = req.get("reasoning_effort")
    if effort is not None and "reasoning_effort" not in kwargs:
        variables["reasoning_effort"] = {"none": "low", "minimal": "low", "xhigh": "high"}.get(effort, effort)
    variables.update(kwargs)
    if compiled is None:
        compiled = {}
    tmpl = compiled.get(source)
    if tmpl is None:
        tmpl = compiled[source] = env.from_string(source)
    return tmpl.render(**variables)


def batch(path):
    f = sys.stdin if path == "-" else open(path, encoding="utf-8")
    envs = {}
    sources = {}
    compiled = {}
    out = sys.stdout
    for line in f:
        if not line.strip():
            continue
        job = json.loads(line)
        now = int(job.get("now") or 0)
        env = envs.get(now)
        if env is None:
            env = envs[now] = make_env(now)
            compiled[now] = {}
        try:
            if "source" in job:
                source = job["source"]
            else:
                source = sources.get(job["template"])
                if source is None:
                    with open(job["template"], encoding="utf-8") as tf:
                        source = sources[job["template"]] = tf.read()
            res = {"ok": True, "out": render_request(env, source, job["request"], job.get("bos") or "", job.get("eos") or "", compiled[now])}
        except Exception as e:  # noqa: BLE001 - any template failure is reported the same way
            res = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        out.write(json.dumps(res, ensure_ascii=False) + "\n")
    out.flush()
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--batch":
        return batch(argv[2])
    opts = {"--bos": "", "--eos": "", "--now": "0"}
    pos = []
    expr = None
    i = 1
    while i < len(argv):
        if argv[i] in opts and i + 1 < len(argv):
            opts[argv[i]] = argv[i + 1]
            i += 2
        elif argv[i] == "--expr" and i + 1 < len(argv):
            expr = argv[i + 1]
            i += 2
        else:
            pos.append(argv[i])
            i += 1
    env = make_env(int(opts["--now"]))
    try:
        if expr is not None:
            variables = json.loads(pos[0]) if pos else {}
            out = env.from_string(expr).render(**variables)
        else:
            with open(pos[0], encoding="utf-8") as f:
                source = f.read()
            with open(pos[1], encoding="utf-8") as f:
                req = json.load(f)
            out = render_request(env, source, req, opts["--bos"], opts["--eos"])
    except Exception as e:  # noqa: BLE001 - any template failure is reported the same way
        sys.stderr.write("ERROR: %s: %s\n" % (type(e).__name__, e))
        return 1
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
