/** A Beijing date-time field (typed "YYYY-MM-DD HH:MM" or picked) with its label and zone, read and written via time.ts whatever the browser zone. */
import { TIME_ZONE_SHORT } from "../time";
import { BeijingDateTimeField } from "./BeijingDateInput";

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
      <BeijingDateTimeField id={id} label={`${label} (${TIME_ZONE_SHORT})`} value={value} onChange={onChange} max={max} />
    </label>
  );
}
