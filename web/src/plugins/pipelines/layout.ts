/** Layered DAG layout (left to right): longest-path layers, dummy nodes on long edges, barycenter ordering to reduce crossings. */

export interface LayoutInput {
  id: string;
  /** Ids this node depends on (edges run dependency → node); unknown ids are ignored. */
  deps: string[];
  /** Box height in px (a matrix step with points is taller). */
  height: number;
}

export interface Point {
  x: number;
  y: number;
}

export interface PlacedNode {
  id: string;
  layer: number;
  /** Position within its layer, 0 at the top. */
  order: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedEdge {
  from: string;
  to: string;
  /** From the right middle of `from`, through the dummy points, to the left middle of `to`. */
  points: Point[];
}

export interface Layout {
  nodes: PlacedNode[];
  edges: PlacedEdge[];
  width: number;
  height: number;
  layers: number;
  crossings: number;
}

export interface LayoutOptions {
  nodeWidth: number;
  /** Horizontal space between layers (edge labels go there). */
  layerGap: number;
  /** Vertical space between boxes in one layer. */
  nodeGap: number;
  /** Ordering sweeps (down and up count as one). */
  sweeps: number;
}

const DEFAULTS: LayoutOptions = { nodeWidth: 200, layerGap: 130, nodeGap: 28, sweeps: 12 };

/**
 * Longest-path layering: a node with no (known) dependency is in layer 0, any other node one
 * layer right of its deepest dependency. Edges closing a cycle (never sent by the server, which
 * refuses cycles) are ignored rather than looping.
 */
export function assignLayers(nodes: Pick<LayoutInput, "id" | "deps">[]): Map<string, number> {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const layer = new Map<string, number>();
  const onStack = new Set<string>();
  const visit = (id: string): number => {
    const known = layer.get(id);
    if (known !== undefined) return known;
    onStack.add(id);
    let l = 0;
    for (const d of byId.get(id)?.deps ?? []) {
      if (!byId.has(d) || onStack.has(d) || d === id) continue;
      l = Math.max(l, visit(d) + 1);
    }
    onStack.delete(id);
    layer.set(id, l);
    return l;
  };
  for (const n of nodes) visit(n.id);
  return layer;
}

interface Seg {
  /** Index of the upper-layer vertex and the lower-layer vertex (in `order` of their layers). */
  a: string;
  b: string;
}

/** Crossings between two adjacent layers given their orders (pairs of segments that swap). */
function layerCrossings(segs: Seg[], upper: Map<string, number>, lower: Map<string, number>): number {
  let c = 0;
  for (let i = 0; i < segs.length; i++) {
    for (let j = i + 1; j < segs.length; j++) {
      const da = upper.get(segs[i].a)! - upper.get(segs[j].a)!;
      const db = lower.get(segs[i].b)! - lower.get(segs[j].b)!;
      if (da * db < 0) c++;
    }
  }
  return c;
}

/** Total crossings of a layered drawing: `layers[k]` lists vertex ids top to bottom, `segs[k]` the segments between layer k and k+1. */
export function countCrossings(layers: string[][], segs: Seg[][]): number {
  let total = 0;
  for (let k = 0; k + 1 < layers.length; k++) {
    const upper = new Map(layers[k].map((id, i) => [id, i]));
    const lower = new Map(layers[k + 1].map((id, i) => [id, i]));
    total += layerCrossings(segs[k] ?? [], upper, lower);
  }
  return total;
}

/** Reorders `layer` by the mean position of each vertex's neighbours in the fixed layer (ties and loners keep their place). */
function barycenterOrder(layer: string[], neighbours: Map<string, string[]>, fixedPos: Map<string, number>): string[] {
  const keyed = layer.map((id, i) => {
    const ns = (neighbours.get(id) ?? []).map((n) => fixedPos.get(n)).filter((p): p is number => p !== undefined);
    return { id, i, key: ns.length ? ns.reduce((a, b) => a + b, 0) / ns.length : i };
  });
  keyed.sort((p, q) => p.key - q.key || p.i - q.i);
  return keyed.map((k) => k.id);
}

/** Lays out the DAG left to right; input order breaks ties (the spec's step order). */
export function layoutDag(input: LayoutInput[], options: Partial<LayoutOptions> = {}): Layout {
  const o = { ...DEFAULTS, ...options };
  const layerOf = assignLayers(input);
  const heights = new Map(input.map((n) => [n.id, n.height]));
  const layerCount = input.length ? Math.max(...layerOf.values()) + 1 : 0;
  const layers: string[][] = Array.from({ length: layerCount }, () => []);
  for (const n of input) layers[layerOf.get(n.id)!].push(n.id);

  // Edges, split into unit segments through dummy vertices ("from>to#k").
  const chains: { from: string; to: string; path: string[] }[] = [];
  const segs: Seg[][] = Array.from({ length: Math.max(0, layerCount - 1) }, () => []);
  const ids = new Set(input.map((n) => n.id));
  for (const n of input) {
    const seen = new Set<string>();
    for (const d of n.deps) {
      if (!ids.has(d) || d === n.id || seen.has(d)) continue;
      seen.add(d);
      const lf = layerOf.get(d)!;
      const lt = layerOf.get(n.id)!;
      if (lt <= lf) continue; // a cycle's closing edge: not drawn
      const path = [d];
      for (let l = lf + 1; l < lt; l++) {
        const dummy = `${d}>${n.id}#${l}`;
        layers[l].push(dummy);
        heights.set(dummy, 0);
        path.push(dummy);
      }
      path.push(n.id);
      for (let i = 0; i + 1 < path.length; i++) segs[lf + i].push({ a: path[i], b: path[i + 1] });
      chains.push({ from: d, to: n.id, path });
    }
  }
  const up = new Map<string, string[]>();
  const down = new Map<string, string[]>();
  for (const layerSegs of segs) {
    for (const s of layerSegs) {
      up.set(s.b, [...(up.get(s.b) ?? []), s.a]);
      down.set(s.a, [...(down.get(s.a) ?? []), s.b]);
    }
  }

  // Barycenter sweeps, keeping the best ordering seen.
  let order = layers.map((l) => [...l]);
  let best = order.map((l) => [...l]);
  let bestCrossings = countCrossings(order, segs);
  for (let sweep = 0; sweep < o.sweeps && bestCrossings > 0; sweep++) {
    for (let k = 1; k < order.length; k++) {
      order[k] = barycenterOrder(order[k], up, new Map(order[k - 1].map((id, i) => [id, i])));
    }
    for (let k = order.length - 2; k >= 0; k--) {
      order[k] = barycenterOrder(order[k], down, new Map(order[k + 1].map((id, i) => [id, i])));
    }
    const c = countCrossings(order, segs);
    if (c < bestCrossings) {
      bestCrossings = c;
      best = order.map((l) => [...l]);
    }
  }
  order = best;

  // Coordinates: columns per layer, boxes stacked and each column centred on the tallest.
  const colHeight = order.map((l) => l.reduce((sum, id) => sum + (heights.get(id) ?? 0), 0) + Math.max(0, l.length - 1) * o.nodeGap);
  const height = Math.max(0, ...colHeight);
  const pos = new Map<string, { x: number; y: number; h: number; layer: number; order: number }>();
  order.forEach((l, k) => {
    let y = (height - colHeight[k]) / 2;
    const x = k * (o.nodeWidth + o.layerGap);
    l.forEach((id, i) => {
      const h = heights.get(id) ?? 0;
      pos.set(id, { x, y, h, layer: k, order: i });
      y += h + o.nodeGap;
    });
  });
  const nodes: PlacedNode[] = input.map((n) => {
    const p = pos.get(n.id)!;
    return { id: n.id, layer: p.layer, order: p.order, x: p.x, y: p.y, width: o.nodeWidth, height: p.h };
  });
  const edges: PlacedEdge[] = chains.map((c) => {
    const points: Point[] = [];
    c.path.forEach((id, i) => {
      const p = pos.get(id)!;
      const mid = p.y + p.h / 2;
      if (i === 0) points.push({ x: p.x + o.nodeWidth, y: mid });
      else if (i === c.path.length - 1) points.push({ x: p.x, y: mid });
      else points.push({ x: p.x, y: mid }, { x: p.x + o.nodeWidth, y: mid }); // a dummy spans the column
    });
    return { from: c.from, to: c.to, points };
  });
  const width = layerCount ? layerCount * o.nodeWidth + (layerCount - 1) * o.layerGap : 0;
  return { nodes, edges, width, height, layers: layerCount, crossings: bestCrossings };
}

/** An SVG path through the points: horizontal-tangent cubic curves between columns, straight runs across dummy columns. */
export function edgePath(points: Point[]): string {
  if (points.length === 0) return "";
  let d = `M ${points[0].x} ${points[0].y}`;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1];
    const b = points[i];
    if (a.y === b.y) d += ` L ${b.x} ${b.y}`;
    else {
      const mx = (a.x + b.x) / 2;
      d += ` C ${mx} ${a.y} ${mx} ${b.y} ${b.x} ${b.y}`;
    }
  }
  return d;
}
