/** Timestamps as people see them: Beijing time, with the full date-time and zone in the tooltip. */
import { formatDateTime, formatRelative, formatShort, formatTitle, type Instant } from "../time";

interface Props {
  value: Instant;
  /** "short": clock today / date otherwise; "full": date and clock; "relative": "3 min ago". */
  mode?: "short" | "full" | "relative";
  now?: number;
  className?: string;
}

export function Time({ value, mode = "short", now, className }: Props) {
  const text =
    mode === "full" ? formatDateTime(value) : mode === "relative" ? formatRelative(value, now) : formatShort(value, now);
  return (
    <time className={className} title={formatTitle(value)}>
      {text}
    </time>
  );
}
