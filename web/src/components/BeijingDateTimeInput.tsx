/** A datetime-local input whose value is read and written as Beijing time (via time.ts), whatever the browser zone. */
import { datetimeLocalToIso, isoToDatetimeLocal, TIME_ZONE_SHORT } from "../time";

interface Props {
  id: string;
  label: string;
  /** ISO UTC instant, or null when empty. */
  value: string | null;
  onChange: (iso: string | null) => void;
  max?: string | null;
}

export function BeijingDateTimeInput({ id, label, value, onChange, max }: Props) {
  return (
    <label className="inline-field" htmlFor={id}>
      <span>
        {label} <span className="muted">({TIME_ZONE_SHORT})</span>
      </span>
      <input
        id={id}
        type="datetime-local"
        value={value ? isoToDatetimeLocal(value) : ""}
        max={max ? isoToDatetimeLocal(max) : undefined}
        onChange={(e) => onChange(e.target.value ? datetimeLocalToIso(e.target.value) : null)}
      />
    </label>
  );
}
