"""Write math_outputs.jsonl: labelled (gold, whole model output) pairs shaped like real outputs.

    python tests/verifiers/data/make_math_outputs.py

Each row has the shape of math_pairs.jsonl plus a class: `gold` (a bare answer, or a whole
dataset solution for the gold-side class), `pred` (a whole model output: prose, several math
spans, then the final answer in the habits of one model family), `equal` (the label),
`category` (the output style: qwen, llama, minerva, markdown, prose, gsm8k) and `class` (the
marker or answer form under test). About 40% are near misses: a wrong final answer next to
the right one as an intermediate, a hedge, a dropped "...", a percent of the right number.

Written from what current and older models print, not from what the verifier reads: each
answer core is rendered in two styles picked at random (fixed seed), with filler steps whose
numbers sometimes include the gold, so a "last number in the text" reader is fooled.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 13
OUT = Path(__file__).with_name("math_outputs.jsonl")

T, F = True, False

# (class, gold, answer as the model writes it in LaTeX, label). The answer is wrapped by a style.
FORM_CORES = [
    # plain competition answers in standard wrappers
    ("standard", "\\frac{3}{4}", "\\frac34", T), ("standard", "\\frac{3}{4}", "0.75", T),
    ("standard", "\\frac{3}{4}", "\\frac{4}{3}", F), ("standard", "2\\sqrt{5}", "\\sqrt{20}", T),
    ("standard", "2\\sqrt{5}", "2\\sqrt{3}", F), ("standard", "-3", "3", F),
    ("standard", "\\frac{\\pi}{3}", "\\dfrac{\\pi}{3}", T), ("standard", "x^2+2x+1", "(x+1)^2", T),
    ("standard", "x^2+2x+1", "(x-1)^2", F), ("standard", "\\frac{1+\\sqrt{5}}{2}", "\\frac{\\sqrt{5}+1}{2}", T),
    ("standard", "\\frac{1+\\sqrt{5}}{2}", "\\frac{1-\\sqrt{5}}{2}", F), ("standard", "3+4i", "4i+3", T),
    ("standard", "3+4i", "3-4i", F), ("standard", "\\dfrac{7}{2}", "3.5", T), ("standard", "120^\\circ", "120", T),
    # lists and sets of tuples
    ("tuples", "(1,2),(3,4)", "(3,4), (1,2)", T), ("tuples", "(1,2),(3,4)", "\\{(1,2),(3,4)\\}", T),
    ("tuples", "(1,2),(3,4)", "(1,2)", F), ("tuples", "(1,2),(3,4)", "(2,1),(4,3)", F),
    ("tuples", "(0,0), (2,-1)", "(2,-1) \\text{ and } (0,0)", T), ("tuples", "(-1, 5)", "(5, -1)", F),
    # ratios
    ("ratio", "3:2", "3:2", T), ("ratio", "3:2", "6:4", T), ("ratio", "3:2", "2:3", F),
    ("ratio", "1:2:3", "2:4:6", T), ("ratio", "1:2:3", "1:3:2", F),
    # name = value on either side
    ("named", "(3,2)", "(p,q)=(3,2)", T), ("named", "(3,2)", "(p, q) = (2, 3)", F),
    ("named", "1", "f(2)=1", T), ("named", "f(x)=2x+1", "2x+1", T), ("named", "3", "x = 2 + 1 = 3", T),
    ("named", "2", "x = 2 + 1 = 3", F), ("named", "7", "a+b=7", T), ("named", "6", "2x = 6", F),
    ("named", "k=4", "4", T), ("named", "k=4", "k=-4", F),
    # approximations
    ("approx", "\\frac{22}{7}", "\\frac{22}{7} \\approx 3.14", T), ("approx", "\\sqrt{2}", "\\approx 1.414", T),
    ("approx", "\\pi", "\\approx 3.1", F), ("approx", "3.14", "\\pi \\approx 3.14", T),
    ("approx", "4\\sqrt{3}", "4\\sqrt{3} \\approx 6.93", T), ("approx", "4\\sqrt{3}", "\\approx 6.8", F),
    # units and words after LaTeX
    ("units", "\\frac{1}{3}", "\\frac13\\text{ meters}", T), ("units", "36\\pi", "36\\pi \\text{ square units}", T),
    ("units", "12", "12^{\\text{th}}", T), ("units", "5", "5\\text{ cm}", T), ("units", "5\\text{ cm}", "5\\text{ m}", F),
    ("units", "36\\pi", "36 \\text{ square units}", F), ("units", "8", "8\\ \\text{inches}", T),
    ("units", "\\frac{9}{2}", "4.5\\text{ hours}", T), ("units", "15", "15 \\mbox{ dollars}", T),
    ("units", "15", "\\$15.50", F), ("units", "24", "24\\text{ cm}^2", T), ("units", "2", "2\\text{nd}", T),
    # \over
    ("over", "\\frac{5}{2}", "{5 \\over 2}", T), ("over", "2.5", "{5 \\over 2}", T), ("over", "\\frac{5}{2}", "{2 \\over 5}", F),
    ("over", "\\frac{1}{6}", "{1\\over 6}", T),
    # set difference and set-builder
    ("setminus", "(-\\infty,0)\\cup(0,\\infty)", "\\mathbb{R}\\setminus\\{0\\}", T),
    ("setminus", "\\mathbb{R}\\setminus\\{0\\}", "(-\\infty, 0)", F),
    ("setminus", "(-\\infty,-1)\\cup(-1,1)\\cup(1,\\infty)", "\\mathbb{R} \\setminus \\{-1, 1\\}", T),
    ("setminus", "(-\\infty,2)\\cup(2,\\infty)", "\\mathbb{R}\\setminus\\{-2\\}", F),
    ("set-builder", "(0,1]", "\\{x \\mid 0<x\\le 1\\}", T), ("set-builder", "(0,1]", "\\{x \\mid 0\\le x\\le 1\\}", F),
    ("set-builder", "(2,\\infty)", "\\{x : x > 2\\}", T), ("set-builder", "[-3, 3]", "\\{x \\in \\mathbb{R} \\mid |x| \\le 3\\}", T),
    # matrices
    ("matrix", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\left[\\begin{array}{cc} 1 & 2 \\\\ 3 & 4 \\end{array}\\right]", T),
    ("matrix", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{bmatrix} 1 & 3 \\\\ 2 & 4 \\end{bmatrix}", F),
    ("matrix", "\\begin{pmatrix} 2 \\\\ 4 \\end{pmatrix}", "2\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", T),
    ("matrix", "\\begin{pmatrix} 2 \\\\ 4 \\end{pmatrix}", "2\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}", F),
    ("matrix", "\\begin{pmatrix} 1/2 & 0 \\\\ 0 & 1/2 \\end{pmatrix}", "\\frac{1}{2}\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}", T),
    # inequalities
    ("inequality", "(-2,3)", "x>-2 \\text{ and } x<3", T), ("inequality", "(-\\infty,1)", "-x>-1", T),
    ("inequality", "(-\\infty,-1)\\cup(1,\\infty)", "|x|>1", T), ("inequality", "(-2,3)", "x>-2 \\text{ or } x<3", F),
    ("inequality", "(1,\\infty)", "x<1", F), ("inequality", "[-1,1]", "|x| \\le 1", T),
    ("inequality", "(-\\infty,-4]", "2x \\le -8", T), ("inequality", "(-\\infty,-4]", "x < -4", F),
    # logs, thin spaces, over-long numbers
    ("log", "3", "\\log_{10} 1000", T), ("log", "2", "\\log_2 8", F), ("log", "\\log_2 8", "3", T),
    ("log", "\\frac{1}{2}", "\\log_4 2", T),
    ("thin-space", "11111111", "11,\\!111,\\!111", T), ("thin-space", "11111111", "1,\\!111,\\!111", F),
    ("thin-space", "1000000", "1\\,000\\,000", T), ("thin-space", "2520", "2{,}520", T),
    # percent
    ("percent", "75", "75\\%", T), ("percent", "\\frac34", "\\frac34\\%", F), ("percent", "25\\%", "\\frac14", T),
    ("percent", "0.25", "25\\%", T), ("percent", "40\\%", "4\\%", F), ("percent", "12.5", "12.5\\%", T),
    ("percent", "0.4", "0.4\\%", F),
    # dropped "..." and the gold's own "..."
    ("ellipsis", "1, 2, 3", "1, 2, 3, \\ldots", F), ("ellipsis", "1, 2, 3", "1, 2, 3, \\dots", F),
    ("ellipsis", "2, 4, 6, \\ldots", "2, 4, 6, \\dots", T), ("ellipsis", "2, 4, 6, \\ldots", "2, 4, 6", F),
]

# Cores rendered by a class-specific marker (the class is the marker).
GRADE_SCHOOL = [("18", "18", T), ("72", "72", T), ("5", "5", T), ("624", "624", T), ("26", "26", T),
                ("1080", "1,080", T), ("18", "17", F), ("72", "720", F), ("35", "53", F), ("624", "642", F),
                ("12", "12.00", T), ("42", "$42", T), ("3", "-3", F), ("1500", "1,500", T)]
LATEX_FINALS = [("\\frac{5}{2}", "\\frac{5}{2}", T), ("\\frac{5}{2}", "2.5", T), ("\\frac{5}{2}", "\\frac{2}{5}", F),
                ("10455", "10,455", T), ("-4", "-4", T), ("-4", "4", F), ("\\sqrt{3}", "\\sqrt3", T),
                ("\\sqrt{3}", "3", F), ("0", "0", T), ("27", "28", F), ("6\\pi", "6\\pi", T), ("6\\pi", "3\\pi", F)]

STEPS = [
    "First, we note that $a^2 + b^2 = {n1}$.",
    "Substituting $x = {n2}$ gives $2({n2}) + 1 = {n3}$.",
    "The discriminant is $b^2 - 4ac = {n1} - {n2} = {d}$, which is positive.",
    "Multiplying both sides by ${n2}$, we get ${n2}y = {n4}$.",
    "We can check this: ${n2} \\times {n3} = {p}$.",
    "Since the sum of the angles is $180^\\circ$, the remaining angle is ${n1}^\\circ$.",
    "Let $s$ be the side length; then $s^2 = {n4}$.",
    "Adding the two equations, $2x = {n3}$, so we need to be careful with the signs here.",
    "There are $\\binom{{{n2}}}{{2}} = {c}$ ways to choose the pair.",
    "By the Pythagorean theorem, the hypotenuse has length $\\sqrt{{{n1}}}$.",
]
GRADE_STEPS = [
    "She sells {n2} boxes on Monday and {n3} boxes on Tuesday, so {n2} + {n3} = <<{n2}+{n3}={s}>>{s} boxes.",
    "Each box costs ${n2}, so the total is {n2} * {n3} = <<{n2}*{n3}={p}>>{p} dollars.",
    "He gives away half, which is {n4} / 2 = <<{n4}/2={h}>>{h}.",
    "In total there are {n1} - {n2} = <<{n1}-{n2}={d}>>{d} left.",
    "The trip takes {n2} hours at {n3} miles per hour, so {p} miles.",
]
NOUNS = ["answer", "value of $x$", "minimum value", "area of the triangle", "sum", "probability",
         "number of ways", "solution set", "smallest possible value", "result"]


def numbers(rng: random.Random, gold: str) -> dict:
    n1, n2, n3 = rng.randint(10, 99), rng.randint(2, 12), rng.randint(2, 30)
    n4 = 2 * rng.randint(3, 60)
    values = {"n1": n1, "n2": n2, "n3": n3, "n4": n4, "d": n1 - n2, "p": n2 * n3, "s": n2 + n3,
              "h": n4 // 2, "c": n2 * (n2 - 1) // 2}
    if rng.random() < 0.4 and gold.lstrip("-").isdigit():
        values[rng.choice(["n1", "n3", "s"])] = gold  # the gold as an intermediate number
    return values


def steps(rng: random.Random, gold: str, pool=STEPS, k: int = 4) -> list[str]:
    chosen = rng.sample(pool, k=min(k, len(pool)))
    return [s.format(**numbers(rng, gold)) for s in chosen]


def qwen(rng, gold, ans):
    body = steps(rng, gold)
    noun = rng.choice(NOUNS)
    end = rng.choice([
        f"Therefore, the {noun} is $\\boxed{{{ans}}}$.",
        f"**Final Answer**\n\\[\n\\boxed{{{ans}}}\n\\]",
        f"Thus, the final answer is \\(\\boxed{{{ans}}}\\).",
        f"### Final Answer\n\n$$\\boxed{{{ans}}}$$",
    ])
    return (f"To solve this problem, we proceed step by step.\n\n1. **Set up.** {body[0]}\n"
            f"2. **Simplify.** {body[1]}\n3. **Solve.** {body[2]}\n\n{body[3]}\n\n{end}")


def llama(rng, gold, ans):
    body = steps(rng, gold)
    return (f"## Step 1: Understand the problem\n{body[0]}\n\n## Step 2: Compute\n{body[1]} {body[2]}\n\n"
            f"## Step 3: Conclude\n{body[3]}\n\nThe final answer is: $\\boxed{{{ans}}}$")


def minerva(rng, gold, ans):
    body = steps(rng, gold, k=3)
    return " ".join(body) + f"\nFinal Answer: The final answer is ${ans}$. I hope it is correct."


def markdown(rng, gold, ans):
    body = steps(rng, gold, k=3)
    end = rng.choice([f"**Answer:** ${ans}$", f"**Final Answer:** $\\boxed{{{ans}}}$",
                      f"### Answer\n\\[ {ans} \\]"])
    return "### Solution\n\n- " + "\n- ".join(body) + f"\n\n{end}"


def closing(rng, gold, ans):
    body = steps(rng, gold, k=3)
    noun = rng.choice(NOUNS[1:])
    return " ".join(body) + "\n\n" + rng.choice([f"Thus the {noun} is ${ans}$.",
                                                 f"Hence the {noun} equals ${ans}$.",
                                                 f"So the {noun} is $\\displaystyle {ans}$."])


LATEX_STYLES = {"qwen": qwen, "llama": llama, "minerva": minerva, "markdown": markdown, "prose": closing}


def grade(rng, gold, ans, marker):
    body = steps(rng, gold, GRADE_STEPS, k=3)
    last = {"####": f"#### {ans}", "A:": f"A: {ans}", "answer-is": f"The answer is {ans}."}[marker]
    return "\n".join(body) + "\n" + last


def marker_rows(rng) -> list[dict]:
    rows = []
    for gold, ans, eq in GRADE_SCHOOL:
        for marker, cls in (("####", "gsm8k-hash"), ("A:", "gsm8k-A")):
            rows.append(row(gold, grade(rng, gold, ans, marker), eq, "gsm8k", cls))
    for gold, ans, eq in LATEX_FINALS:
        body = " ".join(steps(rng, gold, k=3))
        rows.append(row(gold, minerva(rng, gold, ans), eq, "minerva", "minerva"))
        rows.append(row(gold, body + f"\n\nAnswer \\[ {ans} \\]", eq, "markdown", "answer-display"))
        rows.append(row(gold, closing(rng, gold, ans), eq, "prose", "closing-sentence"))
        # an earlier intermediate box, then the final marked answer
        early = rng.choice(["255", "\\frac{1}{2}", "12", gold])
        text = (f"{body}\n\nFor the first part we get $\\boxed{{{early}}}$. Continuing, "
                f"{steps(rng, gold, k=1)[0]}\n\nThe final answer is ${ans}$.")
        rows.append(row(gold, text, eq, "minerva", "precedence"))
    for gold, ans, why, eq in [("5", "5", "since $2+3=5$", T), ("42", "42", "because each of the 6 rows has 7 seats", T),
                               ("14", "14", "which is the number of pairs", T), ("9", "8", "since $3^2 - 1 = 8$", F),
                               ("\\frac{1}{2}", "1/2", "as computed above", T), ("100", "10", "since $10^2 = 100$", F),
                               ("6", "6", "so Tom has 6 marbles left", T), ("6", "4", "so 6 - 2 = 4 remain", F)]:
        body = " ".join(steps(rng, gold, k=3))
        rows.append(row(gold, f"{body}\nThe answer is {ans}, {why}.", eq, "prose", "marker-prose"))
    for gold, parts, eq in [("2, 3", ("2", "3"), T), ("-1, 4", ("-1", "4"), T), ("-1, 4", ("-1",), F),
                            ("\\frac{1}{2}, -3", ("-3", "\\frac12"), T), ("1, 5", ("1", "6"), F), ("0, 2, 4", ("0", "2", "4"), T)]:
        body = " ".join(steps(rng, gold, k=3))
        joined = " and ".join(f"$\\boxed{{{p}}}$" for p in parts) if rng.random() < 0.5 else \
            ", ".join(f"x = \\boxed{{{p}}}" for p in parts[:-1]) + (" and " if len(parts) > 1 else "") + f"x = \\boxed{{{parts[-1]}}}"
        rows.append(row(gold, f"{body}\n\nThe solutions are {joined}.", eq, "qwen", "multi-box"))
    for gold, ans, eq in [("\\text{(B)}", "(B) 12", T), ("B", "**(B) 12**", T), ("C", "(B) 12", F), ("12", "(B) 12", T),
                          ("(D)", "\\textbf{(D)}\\ 7", T), ("(D)", "(A)", F), ("A", "(A) $\\frac{1}{2}$", T)]:
        body = " ".join(steps(rng, gold, k=2))
        rows.append(row(gold, f"{body}\n\nThe answer is {ans}.", eq, "prose", "choice"))
    for gold, tail, eq in [("2", "$2$ (or maybe $3$)", F), ("2", "$2$ or $3$", F), ("4", "either $4$ or $5$", F),
                           ("7", "$7$ (I double-checked this)", T), ("10", "$10$, although $12$ is also possible", F),
                           ("3", "$3$; but it could be $4$ if we count the endpoints", F)]:
        body = " ".join(steps(rng, gold, k=3))
        rows.append(row(gold, f"{body}\n\nThe final answer is {tail}.", eq, "prose", "hedge"))
    for gold in ["17", "\\frac{3}{8}", "64", "2"]:
        text = " ".join(steps(rng, gold, k=4)) + f" Now we substitute back to find that the value is {gold} times"
        rows.append(row(gold, text, F, "prose", "no-answer"))
    # an intermediate box right, the final marked answer wrong: the last marked answer wins
    for gold, final in [("12", "15"), ("\\frac{1}{4}", "\\frac{1}{2}"), ("9", "-9")]:
        body = " ".join(steps(rng, gold, k=3))
        text = f"{body}\nSo the first case gives $\\boxed{{{gold}}}$.\n{steps(rng, gold, k=1)[0]}\nFinal Answer: The final answer is ${final}$. I hope it is correct."
        rows.append(row(gold, text, F, "minerva", "precedence"))
    return rows


def gold_solution_rows(rng) -> list[dict]:
    rows = []
    gsm = [("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether.\n#### 72", "72"),
           ("Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10", "10"),
           ("In the beginning, Betty has only 100 / 2 = $<<100/2=50>>50.\nBetty needs 100 - 50 - 30 - 15 = $<<100-50-30-15=5>>5 more.\n#### 5", "5")]
    for gold, right in gsm:
        wrong = str(int(right) + rng.choice([-2, -1, 1, 10]))
        rows.append(row(gold, grade(rng, right, right, "A:"), T, "gsm8k", "gold-solution"))
        rows.append(row(gold, grade(rng, right, right, "####"), T, "gsm8k", "gold-solution"))
        rows.append(row(gold, grade(rng, right, wrong, "answer-is"), F, "gsm8k", "gold-solution"))
    math = [("The area is $\\frac{1}{2}bh = \\frac{1}{2}(5)(2) = 5$, so half of it is $\\boxed{\\frac{5}{2}}$.", "2.5", "\\frac{2}{5}"),
            ("We have $x^2 = 12$, so $x = \\pm 2\\sqrt{3}$ and the positive root is $\\boxed{2\\sqrt{3}}$.", "\\sqrt{12}", "2\\sqrt{2}"),
            ("Counting, there are $3 \\cdot 4 = 12$ outfits, hence $\\boxed{12}$ total.", "12", "7")]
    for gold, right, wrong in math:
        rows.append(row(gold, qwen(rng, right, right), T, "qwen", "gold-solution"))
        rows.append(row(gold, llama(rng, right, wrong), F, "llama", "gold-solution"))
    return rows


def row(gold: str, pred: str, equal: bool, category: str, cls: str) -> dict:
    return {"gold": gold, "pred": pred, "equal": equal, "category": category, "class": cls}


def build() -> list[dict]:
    rng = random.Random(SEED)
    rows = []
    for cls, gold, ans, eq in FORM_CORES:
        for style in rng.sample(sorted(LATEX_STYLES), k=2):
            rows.append(row(gold, LATEX_STYLES[style](rng, gold, ans), eq, style, cls))
    rows += marker_rows(rng)
    rows += gold_solution_rows(rng)
    return rows


def main() -> None:
    rows = build()
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    negatives = sum(not r["equal"] for r in rows)
    print(f"{len(rows)} rows, {negatives / len(rows):.0%} near misses, "
          f"{len({r['class'] for r in rows})} classes -> {OUT}")


if __name__ == "__main__":
    main()
