// Hand-written source text for the tokenizer conformance corpus (see
// corpus.mjs, which mixes these pools deterministically into >= 200 KB).
// Everything here was written for this test; nothing is downloaded.

export const ENGLISH = [
  "The committee met on Tuesday to review the budget, but nobody could agree on what the numbers meant.",
  "She'd always said that the lighthouse was haunted; I didn't believe her until the lamp went out at midnight.",
  "We're shipping version 2.4 next week — it fixes the memory leak, the slow start-up, and the off-by-one error in the pager.",
  "\"Don't touch that,\" he warned, \"it's still hot.\" They'll never learn, I thought, and walked away.",
  "In 1969, humans first walked on the Moon; in 2024 the question is who goes back, and when.",
  "The recipe calls for 250 g of flour, 3 eggs, 1/2 cup of milk and a pinch (roughly 0.5 g) of salt.",
  "Most bugs are boring: a missing check, a wrong index, an assumption that held in testing and failed in production.",
  "I've read the paper twice and I'm still not sure whether the effect is real or an artefact of the sampling.",
  "YOU'LL SEE IT WHEN YOU BELIEVE IT, said the sign above the door of the small, crowded bookshop.",
  "Rain fell all night on the tin roof, and by morning the river had climbed halfway up the garden wall.",
  "Please send the signed contract to legal@example.org before 5 p.m. EST on Friday, March 14th.",
  "The train from Edinburgh to London takes about four and a half hours if nothing goes wrong, which it usually does.",
  "A good API is small, obvious, and hard to misuse; a great one also tells you what went wrong when you misuse it anyway.",
  "There were 7 apples, 12 oranges and 144 grapes on the table — an oddly precise still life.",
  "He typed 'ls -la' into the terminal, saw nothing unusual, and went back to his coffee.",
  "Weather forecast: highs of 31°C in the afternoon, 40% chance of thunderstorms, winds NW at 15 km/h.",
  "It's not that the system is slow; it's that it's slow in ways nobody measured before they shipped it.",
  "Our co-op's 3rd annual bake-off raised $1,234.56 for the library — thanks, everyone!",
  "They've been working on the bridge since the spring, and the locals have started calling it 'the eternal project'.",
  "The old map showed islands that don't exist, rivers that run uphill, and a kingdom called Prester John's.",
  "Why would anyone write a tokenizer in C? Because milliseconds add up when you serve a billion requests.",
  "Q: What's the capital of Australia? A: Canberra, not Sydney — a common mistake.",
  "The cat sat on the mat. The mat was not amused. Neither, frankly, was the cat.",
  "Mr. O'Brien's dog — a scruffy terrier named Biscuit — won 'Best in Show' at the county fair.",
  "Ladies and gentlemen, the flight to New York has been delayed by approximately forty-five minutes.",
];

export const CHINESE = [
  "今天天气很好，我们去公园散步吧。",
  "人工智能正在改变我们的生活方式，从医疗到交通，从教育到娱乐。",
  "这本书讲述了一个普通家庭在改革开放三十年中的变化。",
  "请在下周五之前提交您的报告，并抄送给项目经理。",
  "长江是中国最长的河流，全长约六千三百公里，流经十一个省、自治区和直辖市。",
  "他一边喝茶，一边看报纸，偶尔抬头看看窗外的雨。",
  "学而时习之，不亦说乎？有朋自远方来，不亦乐乎？",
  "这家餐厅的小笼包非常有名，每天中午都要排很长的队。",
  "数据显示，今年第一季度的出口额同比增长了百分之八点五。",
  "我们的系统支持多种语言，包括简体中文、繁體中文、日本語和한국어。",
  "「你吃饭了吗？」她问。「还没呢，」他回答，「等会儿一起去吧。」",
  "科学家们在深海发现了一种新的发光生物，它能在完全黑暗的环境中生存。",
  "北京的冬天很冷，但是有暖气，所以室内很暖和。",
  "程序员最讨厌的两件事：写文档，和别人不写文档。",
  "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
  "臺灣的夜市文化非常豐富，有各種各樣的小吃。",
];

export const JAPANESE = [
  "今日はとても良い天気ですね。散歩に行きませんか？",
  "東京駅から新幹線で大阪まで約二時間半かかります。",
  "このプログラムは、入力されたテキストをトークンに分割します。",
  "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。",
  "コンピューターのメモリが足りないため、アプリケーションが終了しました。",
  "日本の四季はそれぞれ美しく、特に春の桜と秋の紅葉が有名です。",
  "すみません、駅はどこですか？　まっすぐ行って、二つ目の角を右です。",
  "ラーメン、寿司、天ぷら――どれも美味しいけれど、今日はカレーにしよう。",
  "彼女は毎朝六時に起きて、ジョギングをしてから会社に行きます。",
  "ｶﾀｶﾅの半角文字と、ＡＢＣの全角英字も混ぜておきます。",
  "古池や蛙飛び込む水の音",
  "会議は午後３時から第２会議室で行います。資料は事前に共有してください。",
];

export const KOREAN = [
  "안녕하세요, 만나서 반갑습니다. 오늘 날씨가 정말 좋네요.",
  "서울은 대한민국의 수도이며 인구는 약 천만 명입니다.",
  "이 프로그램은 텍스트를 토큰으로 나누는 역할을 합니다.",
  "저는 매일 아침 커피 한 잔과 함께 신문을 읽습니다.",
  "한글은 세종대왕이 1443년에 창제한 문자입니다.",
  "다음 주 금요일까지 보고서를 제출해 주시기 바랍니다.",
  "김치찌개와 된장찌개 중에서 어느 것을 더 좋아하세요?",
  "비가 오는 날에는 집에서 책을 읽는 것이 가장 좋아요.",
  "컴퓨터가 갑자기 꺼져서 작업한 내용을 모두 잃어버렸어요!",
  "ㅋㅋㅋㅋ 진짜 웃기다 ㅎㅎ",
];

export const RUSSIAN = [
  "Москва — столица России и крупнейший город страны по численности населения.",
  "Сегодня утром шёл снег, а к обеду выглянуло солнце и всё растаяло.",
  "Мы обязательно закончим проект к концу месяца, если никто не заболеет.",
  "«Война и мир» — роман Льва Толстого, опубликованный в 1865–1869 годах.",
  "Пожалуйста, не забудьте выключить свет, когда будете уходить из офиса.",
  "Программа разбивает текст на токены и возвращает их идентификаторы.",
  "В библиотеке было тихо; только часы на стене громко тикали.",
  "Съешь же ещё этих мягких французских булок, да выпей чаю.",
  "Ёлка, ёжик и шёлк — слова с буквой «ё», которую часто пишут как «е».",
  "ПРИВЕТ, МИР! Как дела? Всё хорошо, спасибо.",
  "Україна, Беларусь і Болгарія теж використовують кирилицю: ї, є, ў, ъ.",
];

export const ARABIC = [
  "مرحبا بالعالم! كيف حالك اليوم؟",
  "اللغة العربية هي إحدى أكثر اللغات انتشارا في العالم.",
  "يقع نهر النيل في شمال شرق أفريقيا ويعتبر أطول نهر في العالم.",
  "من فضلك أرسل التقرير قبل يوم الجمعة القادم.",
  "بِسْمِ اللَّهِ الرَّحْمَٰنِ الرَّحِيمِ",
  "العدد ١٢٣٤٥ مكتوب بالأرقام العربية الشرقية، و12345 بالأرقام الغربية.",
  "ذهبتُ إلى السوق واشتريتُ خبزاً وجبناً وزيتوناً.",
  "تعمل هذه البرمجية على تقسيم النص إلى رموز.",
  "שלום עולם! זה משפט בעברית עם ניקוד: בְּרֵאשִׁית.",
  "فارسی: سلام، حال شما چطور است؟ اردو: آپ کیسے ہیں؟",
];

export const OTHER = [
  "Ελληνικά: Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
  "हिन्दी: नमस्ते, आप कैसे हैं? मैं ठीक हूँ, धन्यवाद।",
  "ไทย: สวัสดีครับ วันนี้อากาศดีมาก",
  "Tiếng Việt: Tôi yêu tiếng Việt và phở bò Hà Nội.",
  "Deutsch: Grüße aus München! Die Straße heißt Schloßallee, über der Brücke.",
  "Français : « Où est la bibliothèque ? » — « Là-bas, à côté du café. »",
  "Español: ¿Dónde está el baño? ¡Muchas gracias, señor!",
  "Polski: Zażółć gęślą jaźń — pchnąć w tę łódź jeża.",
  "Türkçe: İstanbul'da ılık bir gün; ğüşiöç harfleri.",
  "Íslenska: Þú ert ótrúleg(ur), sagði ég við ðað.",
  "Georgian: ქართული ენა; Armenian: Հայերեն լեզու; Amharic: ሰላም ልዑል",
  "Tamil: வணக்கம் உலகம்; Bengali: হ্যালো বিশ্ব; Sinhala: ආයුබෝවන්",
];

export const EMOJI = [
  "😀", "😂", "🥲", "🤖", "🎉", "👍", "👍🏻", "👍🏽", "👍🏿", "❤️", "❤", "🔥", "✨", "🚀", "🌍",
  "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏾‍🚀", "👩‍❤️‍💋‍👨", "🏳️‍🌈", "🏴‍☠️", "🇫🇷", "🇯🇵", "🇺🇸", "🇨🇳", "🇰🇷", "🇺🇦",
  "1️⃣", "#️⃣", "*️⃣", "©️", "™️", "☕", "🍣", "🐈‍⬛", "🫠", "🫶🏼", "🧔‍♀️", "🙇‍♂️", "💁🏽‍♀️",
  "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "👁️‍🗨️", "🤷", "🤷‍♂️", "🥳", "🧠", "🦀", "🐍", "☃️", "⚡",
];

export const CODE = {
  c: `#include <stdio.h>
#include <string.h>

/* Counts the words in a line: runs of non-space bytes. */
static size_t count_words(const char *s) {
    size_t n = 0;
    int in_word = 0;
    for (; *s; s++) {
        if (*s == ' ' || *s == '\\t' || *s == '\\n') {
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            n++;
        }
    }
    return n;
}

int main(int argc, char **argv) {
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        printf("%zu\\n", count_words(line));
    }
    return argc > 1 ? 1 : 0;
}
`,
  python: `import collections
import re


class LRUCache:
    """A tiny least-recently-used cache."""

    def __init__(self, capacity: int = 128) -> None:
        self.capacity = capacity
        self._data: "collections.OrderedDict[str, int]" = collections.OrderedDict()

    def get(self, key):
        if key not in self._data:
            return None
        self._data.move_to_end(key)
        return self._data[key]

    def put(self, key, value):
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)


def words(text):
    return re.findall(r"\\w+", text.lower())


if __name__ == "__main__":
    cache = LRUCache(2)
    for i, w in enumerate(words("The quick brown fox's tail")):
        cache.put(w, i ** 2)
    print(f"{cache.get('fox')=} {len(cache._data)}")
`,
  javascript: `'use strict';
// Debounce: call fn at most once per \`ms\` milliseconds of quiet.
export function debounce(fn, ms = 250) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn.apply(this, args), ms);
  };
}

const users = [{ id: 1, name: "Ada" }, { id: 2, name: "Linus" }];
const byId = new Map(users.map((u) => [u.id, u]));
console.log(\`found: \${byId.get(2)?.name ?? "nobody"}\`);

async function fetchJson(url) {
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(\`HTTP \${res.status}\`);
  return res.json();
}
`,
  rust: `use std::collections::HashMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Token<'a> {
    Word(&'a str),
    Number(i64),
    Punct(char),
}

impl<'a> fmt::Display for Token<'a> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "{w}"),
            Token::Number(n) => write!(f, "{n}"),
            Token::Punct(c) => write!(f, "{c}"),
        }
    }
}

fn histogram(words: &[&str]) -> HashMap<String, usize> {
    let mut h = HashMap::new();
    for w in words {
        *h.entry(w.to_lowercase()).or_insert(0usize) += 1;
    }
    h
}
`,
  go: `package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

type Counter struct {
	seen map[string]int
}

func (c *Counter) Add(word string) {
	if c.seen == nil {
		c.seen = make(map[string]int)
	}
	c.seen[strings.ToLower(word)]++
}

func main() {
	c := &Counter{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		for _, w := range strings.Fields(sc.Text()) {
			c.Add(w)
		}
	}
	fmt.Printf("%d distinct words\\n", len(c.seen))
}
`,
  sql: `SELECT u.id, u.email, COUNT(o.id) AS orders, SUM(o.total_cents) / 100.0 AS spent
FROM users AS u
LEFT JOIN orders AS o ON o.user_id = u.id AND o.created_at >= '2024-01-01'
WHERE u.deleted_at IS NULL
GROUP BY u.id, u.email
HAVING COUNT(o.id) > 3
ORDER BY spent DESC
LIMIT 50;
`,
  html: `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Tokens &amp; Things</title></head>
<body>
  <div class="card" id="main" data-count="42">
    <p>Hello, <b>world</b>!&nbsp;&lt;3</p>
    <a href="https://example.com/?q=a+b&amp;lang=en">link</a>
  </div>
</body>
</html>
`,
  shell: `#!/bin/sh
set -eu
for f in "$@"; do
  n=$(wc -l < "$f")
  printf '%s\\t%d\\n' "$f" "$n"
done | sort -k2 -n -r | head -n 10
echo "done: \${#} files" >&2
`,
  json: `{"model": "qwen3", "messages": [{"role": "user", "content": "Hi!\\nHow are you?"}], "temperature": 0.7, "max_tokens": 256, "stream": true, "stop": ["\\n\\n", "</s>"]}
`,
};

// Text that looks like special tokens of the models under test, alone or in
// fragments, so the special-token splitter and the plain encoder both see it.
export const SPECIAL_LIKE = [
  "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
  "<|start_header_id|>", "<|end_header_id|>", "<s>", "</s>", "<unk>", "<think>", "</think>",
  "<tool_call>", "</tool_call>", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<|fim_prefix|>",
  "<|im_start", "im_end|>", "<|", "|>", "< s >", "<s", "s>", "<<s>>", "[INST]", "[/INST]", "<<SYS>>",
  "<|reserved_special_token_5|>", "<|vision_start|>", "<|im_start|><|im_end|>", "<0x41>", "<0xZZ>", "▁", "▁▁",
];
