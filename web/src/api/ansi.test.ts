import { describe, expect, it } from "vitest";
import { isErrorLine, parseAnsi, stripAnsi } from "./ansi";

describe("ansi", () => {
  it("turns SGR colours and bold into styled segments", () => {
    const segs = parseAnsi("\x1b[1;31mFAILED\x1b[0m tests/x.py \x1b[32mok\x1b[39m done");
    expect(segs.map((s) => s.text)).toEqual(["FAILED", " tests/x.py ", "ok", " done"]);
    expect(segs[0].style).toMatchObject({ fgClass: "ansi-fg-1", bold: true });
    expect(segs[1].style).toBeNull();
    expect(segs[2].style).toMatchObject({ fgClass: "ansi-fg-2", bold: false });
    expect(segs[3].style).toBeNull();
  });
  it("reads bright, 256-colour and true-colour codes", () => {
    expect(parseAnsi("\x1b[93mx")[0].style?.fgClass).toBe("ansi-fg-11");
    expect(parseAnsi("\x1b[38;5;196mx")[0].style?.fg).toBe("rgb(255, 0, 0)");
    expect(parseAnsi("\x1b[38;5;9mx")[0].style?.fgClass).toBe("ansi-fg-9");
    expect(parseAnsi("\x1b[48;2;10;20;30mx")[0].style?.bg).toBe("rgb(10, 20, 30)");
    expect(parseAnsi("\x1b[38;5mx")[0].text).toBe("x"); // malformed: ignored, text kept
  });
  it("drops every other escape and keeps what a carriage return leaves", () => {
    expect(stripAnsi("\x1b[2K\x1b[1Gabc\x1b]0;title\x07def\x1b(B")).toBe("abcdef");
    expect(stripAnsi(" 10%\r 50%\r100%")).toBe("100%");
    expect(stripAnsi("a\x00b\x08c\td")).toBe("abc\td");
    expect(parseAnsi("<b>not html</b>")).toEqual([{ text: "<b>not html</b>", style: null }]);
  });
  it("spots the lines that say something went wrong", () => {
    for (const l of [
      "Traceback (most recent call last):",
      "ValueError: bad shape",
      "RuntimeError",
      "npm ERR! ERROR in build",
      "Error: cannot find module",
      "make: *** [all] Error 2 -- exited with code 2",
      "FATAL: password authentication failed",
      "panic: runtime error",
    ])
      expect(isErrorLine(l), l).toBe(true);
    for (const l of ["epoch 1 loss 0.3", "no errors found", "exit code 0", "error_rate=0.1", "INFO all good"])
      expect(isErrorLine(l), l).toBe(false);
  });
});
