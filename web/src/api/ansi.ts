/**
 * Terminal output as a person would see it: SGR colours and weights become styled segments (the
 * caller renders them as spans, never as HTML); every other escape sequence is dropped, and a
 * carriage return keeps only what was written after it (progress bars).
 */

export interface AnsiStyle {
  /** A class for the 16 standard colours ("ansi-fg-1", "ansi-bg-12"), else null. */
  fgClass: string | null;
  bgClass: string | null;
  /** An rgb() colour from a 256-colour or true-colour code, else null. */
  fg: string | null;
  bg: string | null;
  bold: boolean;
  dim: boolean;
  italic: boolean;
  underline: boolean;
}

export interface AnsiSegment {
  text: string;
  /** null: plain text. */
  style: AnsiStyle | null;
}

const PLAIN: AnsiStyle = { fgClass: null, bgClass: null, fg: null, bg: null, bold: false, dim: false, italic: false, underline: false };

// CSI (ESC [ … final byte), OSC (ESC ] … BEL or ST), and two-byte escapes; C0 controls but tab.
// eslint-disable-next-line no-control-regex -- matching terminal escape and control characters is the point of this pattern
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]|[\x00-\x08\x0b-\x1f\x7f]/g;
// eslint-disable-next-line no-control-regex -- matching terminal escape and control characters is the point of this pattern
const SGR = /^\x1b\[([0-9;:]*)m$/;

/** What a terminal would leave on the line after carriage returns. */
function afterCarriageReturn(line: string): string {
  const parts = line.split("\r");
  for (let i = parts.length - 1; i >= 0; i--) if (parts[i] !== "") return parts[i];
  return "";
}

/** The text with every escape sequence removed (for search, copy and error detection). */
export function stripAnsi(line: string): string {
  return afterCarriageReturn(line).replace(ESCAPES, "");
}

function xterm256(n: number): string | null {
  if (n < 0 || n > 255) return null;
  if (n < 16) return null; // the caller uses the class for these
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v}, ${v}, ${v})`;
  }
  const i = n - 16;
  const level = (x: number) => (x === 0 ? 0 : 55 + x * 40);
  return `rgb(${level(Math.floor(i / 36))}, ${level(Math.floor(i / 6) % 6)}, ${level(i % 6)})`;
}

function applySgr(style: AnsiStyle, params: string): AnsiStyle {
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  let s = { ...style };
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) s = { ...PLAIN };
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 22) s.bold = s.dim = false;
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if ((c >= 30 && c <= 37) || (c >= 90 && c <= 97)) [s.fgClass, s.fg] = [`ansi-fg-${c >= 90 ? c - 82 : c - 30}`, null];
    else if ((c >= 40 && c <= 47) || (c >= 100 && c <= 107)) [s.bgClass, s.bg] = [`ansi-bg-${c >= 100 ? c - 92 : c - 40}`, null];
    else if (c === 39) [s.fgClass, s.fg] = [null, null];
    else if (c === 49) [s.bgClass, s.bg] = [null, null];
    else if (c === 38 || c === 48) {
      const fg = c === 38;
      let cls: string | null = null;
      let rgb: string | null = null;
      if (codes[i + 1] === 5) {
        const n = codes[i + 2];
        if (n >= 0 && n < 16) cls = `ansi-${fg ? "fg" : "bg"}-${n}`;
        else rgb = xterm256(n);
        i += 2;
      } else if (codes[i + 1] === 2) {
        const [r, g, b] = codes.slice(i + 2, i + 5).map((x) => Math.max(0, Math.min(255, x || 0)));
        rgb = `rgb(${r}, ${g}, ${b})`;
        i += 4;
      } else break; // malformed: ignore the rest, as terminals do
      if (fg) [s.fgClass, s.fg] = [cls, rgb];
      else [s.bgClass, s.bg] = [cls, rgb];
    }
  }
  return s;
}

function isPlain(s: AnsiStyle): boolean {
  return !s.fgClass && !s.bgClass && !s.fg && !s.bg && !s.bold && !s.dim && !s.italic && !s.underline;
}

/** One line of output as styled segments (styles reset at the start of each line). */
export function parseAnsi(line: string): AnsiSegment[] {
  const text = afterCarriageReturn(line);
  const out: AnsiSegment[] = [];
  let style = PLAIN;
  let last = 0;
  const push = (t: string) => {
    if (!t) return;
    const st = isPlain(style) ? null : style;
    const prev = out[out.length - 1];
    if (prev && prev.style === st) prev.text += t;
    else out.push({ text: t, style: st });
  };
  for (const m of text.matchAll(ESCAPES)) {
    push(text.slice(last, m.index));
    last = m.index! + m[0].length;
    const sgr = SGR.exec(m[0]);
    if (sgr) style = applySgr(style, sgr[1]);
  }
  push(text.slice(last));
  return out;
}

/** Lines a person scans for first: tracebacks, errors, fatal messages, non-zero exits. */
const ERROR_LINE =
  /Traceback \(most recent call last\)|^\s*(?:[\w.]*(?:Error|Exception)\b(?::|$))|\bError:|\bERROR\b|\bFATAL\b|\bpanic:|\bSegmentation fault\b|\bKilled\b|\bexit(?:ed)?(?: with)? (?:code|status) [1-9]\d*|\bnon-zero exit\b/;

/** Is this (escape-free) line one that says something went wrong? */
export function isErrorLine(plain: string): boolean {
  return ERROR_LINE.test(plain);
}
