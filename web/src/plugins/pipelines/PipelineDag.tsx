/** The pipeline's DAG: steps as focusable boxes (coloured, iconed and labelled by state) over SVG edges that name the files they carry. */
import { useMemo } from "react";
import { Link } from "react-router-dom";
import { shortId } from "../../components/ui";
import { MAX_POINTS_SHOWN, STEP_LOOK, boxHeight, edgeLabel, pipelineEdges, pointLabel, pointLook, shorten, stepLook } from "./dagModel";
import { edgePath, layoutDag } from "./layout";
import type { Pipeline, Step } from "./types";

const PAD = 16;
const NODE_WIDTH = 210;
const LAYER_GAP = 140;
/** Characters of an edge label that fit between two columns; the full text is in its tooltip. */
const LABEL_CHARS = 22;

/** Where a step's name links: its task when it has exactly one, else its row in the step table. */
export function stepHref(step: Step): string {
  const tasks = step.points.filter((p) => p.task_id);
  return !step.matrix && tasks.length === 1 ? `/tasks/${tasks[0].task_id}` : `#step-${step.name}`;
}

function StepBox({ step }: { step: Step }) {
  const look = stepLook(step.state);
  const href = stepHref(step);
  const shown = step.matrix ? step.points.slice(0, MAX_POINTS_SHOWN) : [];
  const label = `Step ${step.name}: ${look.label}${step.matrix ? `, ${step.points.length} points` : ""}`;
  return (
    <>
      <div className="dag-step-head">
        <span className="dag-step-icon" aria-hidden="true">
          {look.icon}
        </span>
        {href.startsWith("#") ? (
          <a href={href} className="dag-step-name" aria-label={label} data-testid="dag-step-link">
            {step.name}
          </a>
        ) : (
          <Link to={href} className="dag-step-name" aria-label={label} data-testid="dag-step-link">
            {step.name}
          </Link>
        )}
      </div>
      <div className="dag-step-meta">
        <span className={`badge badge-${look.tone}`} data-testid="dag-step-state">
          {look.label}
        </span>
        {step.when !== "on_success" && <span className="muted small">{step.when === "on_failure" ? "on failure" : "always"}</span>}
        {step.matrix && <span className="muted small">{step.points.length} points</span>}
      </div>
      {shown.length > 0 && (
        <ul className="dag-points">
          {shown.map((pt) => {
            const text = pointLabel(pt.params);
            const pl = pointLook(pt.task_state);
            return (
              <li key={pt.index} title={`${text} · ${pl.label}`}>
                <span className={`dag-point-icon tone-${pl.tone}`} aria-hidden="true">
                  {pl.icon}
                </span>
                {pt.task_id ? (
                  <Link to={`/tasks/${pt.task_id}`} aria-label={`${step.name} ${text}: task ${shortId(pt.task_id)}, ${pl.label}`}>
                    {shorten(text, 24)}
                  </Link>
                ) : (
                  <span className="muted">{shorten(text, 24)}</span>
                )}
              </li>
            );
          })}
          {step.points.length > shown.length && (
            <li>
              <a href={`#step-${step.name}`} className="small">
                +{step.points.length - shown.length} more
              </a>
            </li>
          )}
        </ul>
      )}
    </>
  );
}

export function PipelineDag({ pipeline }: { pipeline: Pipeline }) {
  const edges = useMemo(() => pipelineEdges(pipeline), [pipeline]);
  const layout = useMemo(
    () =>
      layoutDag(
        pipeline.steps.map((s) => ({ id: s.name, deps: edges.filter((e) => e.to === s.name).map((e) => e.from), height: boxHeight(s) })),
        { nodeWidth: NODE_WIDTH, layerGap: LAYER_GAP },
      ),
    [pipeline, edges],
  );
  const steps = new Map(pipeline.steps.map((s) => [s.name, s]));
  const info = new Map(edges.map((e) => [`${e.from}>${e.to}`, e]));
  const width = layout.width + 2 * PAD;
  const height = layout.height + 2 * PAD;
  return (
    <div className="dag-scroll" data-testid="pipeline-dag">
      <div className="dag" style={{ width, height }}>
        <svg className="dag-edges" width={width} height={height} viewBox={`${-PAD} ${-PAD} ${width} ${height}`} role="img" aria-label={`${edges.length} dependencies between ${pipeline.steps.length} steps`}>
          <defs>
            <marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
              <path d="M 0 0 L 10 5 L 0 10 z" fill="currentColor" />
            </marker>
          </defs>
          {layout.edges.map((e) => {
            const ei = info.get(`${e.from}>${e.to}`);
            const text = ei ? edgeLabel(ei) : "";
            const a = e.points[e.points.length - 2];
            const b = e.points[e.points.length - 1];
            const target = steps.get(e.to);
            return (
              <g
                key={`${e.from}>${e.to}`}
                className={`dag-edge${ei && ei.when !== "on_success" ? " dag-edge-cond" : ""}${target && target.state === "skipped" ? " dag-edge-skipped" : ""}`}
                data-testid="dag-edge"
                data-from={e.from}
                data-to={e.to}
                data-files={ei?.files.join(",") ?? ""}
              >
                <title>{`${e.from} → ${e.to}${text ? `: ${text}` : ""}`}</title>
                <path d={edgePath(e.points)} fill="none" markerEnd="url(#dag-arrow)" />
                {text && (
                  <text x={(a.x + b.x) / 2} y={(a.y + b.y) / 2 - 6} textAnchor="middle" className="dag-edge-label">
                    {shorten(text, LABEL_CHARS)}
                  </text>
                )}
              </g>
            );
          })}
        </svg>
        {layout.nodes.map((n) => {
          const step = steps.get(n.id)!;
          return (
            <div
              key={n.id}
              className={`dag-step dag-tone-${stepLook(step.state).tone}`}
              style={{ left: n.x + PAD, top: n.y + PAD, width: n.width, height: n.height }}
              data-testid="dag-step"
              data-step={step.name}
              data-state={step.state}
              title={step.reason ?? undefined}
            >
              <StepBox step={step} />
            </div>
          );
        })}
      </div>
    </div>
  );
}

export function StepLegend() {
  return (
    <ul className="dag-legend" aria-label="Step states">
      {Object.entries(STEP_LOOK).map(([state, look]) => (
        <li key={state} className={`dag-tone-${look.tone}`}>
          <span className="dag-legend-swatch" aria-hidden="true">
            {look.icon}
          </span>
          {look.label}
        </li>
      ))}
    </ul>
  );
}
