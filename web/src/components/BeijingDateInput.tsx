/** Date (and date-time) inputs that show and accept YYYY-MM-DD in Beijing time whatever the browser's locale: a text field with a pattern, plus a calendar picker button (the native picker fills the field; native date inputs would show the browser's own format). */
import { useId, useRef, useState } from "react";
import { CalendarIcon } from "./icons";
import { datetimeLocalToIso, formatDateTimeInput, isoToDatetimeLocal, parseDateTime, parseDay } from "../time";

interface DayProps {
  /** The field's accessible name. */
  label: string;
  /** "YYYY-MM-DD" or "" (no date). */
  value: string;
  /** Called with a valid day, or "" when cleared; invalid text is shown as an error and not reported. */
  onChange: (day: string) => void;
  id?: string;
  required?: boolean;
  /** "blur": report only when the field is left or Enter is pressed (each report saves). */
  commitOn?: "change" | "blur";
}

const DAY_PATTERN = "\\d{4}-\\d{1,2}-\\d{1,2}";
const DAY_HINT = "YYYY-MM-DD";

function PickerButton({ onPick, type, label, value }: { onPick: (v: string) => void; type: "date" | "datetime-local"; label: string; value: string }) {
  const ref = useRef<HTMLInputElement>(null);
  return (
    <>
      <button
        type="button"
        className="btn btn-small btn-ghost"
        aria-label="Calendar"
        title={`Pick ${label} from a calendar`}
        onClick={() => {
          const el = ref.current;
          if (!el) return;
          try {
            el.showPicker();
          } catch {
            el.focus();
          }
        }}
      >
        <CalendarIcon />
      </button>
      <input ref={ref} className="date-picker" type={type} tabIndex={-1} aria-hidden="true" value={value} onChange={(e) => e.target.value && onPick(e.target.value)} />
    </>
  );
}

/** A Beijing calendar day typed as YYYY-MM-DD (or picked). */
export function BeijingDateInput({ label, value, onChange, id, required, commitOn = "change" }: DayProps) {
  const auto = useId();
  const fieldId = id ?? auto;
  const [text, setText] = useState(value);
  const [seen, setSeen] = useState(value);
  if (value !== seen) {
    // The value changed from outside (saved, reset): show it, unless it is what the text already says.
    setSeen(value);
    if ((parseDay(text) ?? text.trim()) !== value) setText(value);
  }
  const bad = text.trim() !== "" && parseDay(text) === null;
  const report = (t: string) => {
    const day = t.trim() === "" ? "" : parseDay(t);
    if (day !== null && day !== value) onChange(day);
  };
  const set = (t: string) => {
    setText(t);
    if (commitOn === "change") report(t);
  };
  return (
    <span className="date-field">
      <input
        id={fieldId}
        type="text"
        inputMode="numeric"
        autoComplete="off"
        placeholder={DAY_HINT}
        pattern={DAY_PATTERN}
        maxLength={10}
        required={required}
        aria-label={label}
        aria-invalid={bad || undefined}
        aria-describedby={bad ? `${fieldId}-err` : undefined}
        value={text}
        onChange={(e) => set(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && commitOn === "blur") report(text);
        }}
        onBlur={() => {
          const day = parseDay(text);
          if (day) setText(day);
          if (commitOn === "blur") report(text);
        }}
      />
      <PickerButton
        type="date"
        label={label}
        value={parseDay(text) ?? ""}
        onPick={(v) => {
          setText(v);
          report(v);
        }}
      />
      {bad && (
        <span className="field-error small" id={`${fieldId}-err`} role="alert">
          Type a date as {DAY_HINT}.
        </span>
      )}
    </span>
  );
}

interface DateTimeProps {
  label: string;
  /** ISO UTC instant, or null when empty. */
  value: string | null;
  onChange: (iso: string | null) => void;
  id?: string;
  max?: string | null;
}

/** A Beijing time typed as "YYYY-MM-DD HH:MM" (or picked); reported as ISO UTC. */
export function BeijingDateTimeField({ label, value, onChange, id, max }: DateTimeProps) {
  const auto = useId();
  const fieldId = id ?? auto;
  const shown = value ? formatDateTimeInput(value) : "";
  const [text, setText] = useState(shown);
  const [seen, setSeen] = useState(shown);
  if (shown !== seen) {
    setSeen(shown);
    if (parseDateTime(text) !== value) setText(shown);
  }
  const bad = text.trim() !== "" && parseDateTime(text) === null;
  const set = (t: string) => {
    setText(t);
    if (t.trim() === "") onChange(null);
    else {
      const iso = parseDateTime(t);
      if (iso !== null) onChange(iso);
    }
  };
  const iso = parseDateTime(text);
  return (
    <span className="date-field">
      <input
        id={fieldId}
        type="text"
        inputMode="numeric"
        autoComplete="off"
        placeholder="YYYY-MM-DD HH:MM"
        pattern={`${DAY_PATTERN}[ T]\\d{1,2}:\\d{2}`}
        maxLength={16}
        aria-label={label}
        aria-invalid={bad || undefined}
        aria-describedby={bad ? `${fieldId}-err` : undefined}
        value={text}
        onChange={(e) => set(e.target.value)}
      />
      <PickerButton
        type="datetime-local"
        label={label}
        value={iso ? isoToDatetimeLocal(iso) : ""}
        onPick={(v) => {
          const picked = datetimeLocalToIso(v);
          if (picked && (!max || picked <= max)) set(formatDateTimeInput(picked));
        }}
      />
      {bad && (
        <span className="field-error small" id={`${fieldId}-err`} role="alert">
          Type a time as YYYY-MM-DD HH:MM (Beijing time).
        </span>
      )}
    </span>
  );
}
