//! A layered (Sugiyama-style) layout for small directed graphs: cycles broken by a
//! depth-first search from the roots, longest-path layering, dummy nodes on long edges,
//! barycentre ordering to reduce crossings, and x positions pulled towards neighbours.
//!
//! Owns geometry only: it takes node sizes and edges, and gives centres and edge paths.
//! It knows nothing of flows or SVG. Self-loops are left to the drawing.

/// Vertical space between layers.
pub const LAYER_GAP: f64 = 80.0;
/// Horizontal space between neighbours in a layer.
pub const NODE_GAP: f64 = 28.0;
/// Width a long edge takes where it crosses a layer.
pub const DUMMY_WIDTH: f64 = 16.0;
pub const MARGIN: f64 = 20.0;
/// Barycentre sweeps (down and up count as one).
pub const ORDER_SWEEPS: usize = 12;
/// Rounds of pulling nodes towards their neighbours.
pub const PLACE_ROUNDS: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Size {
    pub w: f64,
    pub h: f64,
    /// Room kept free to the right of the box (for a self-loop and its label).
    pub right: f64,
}

/// A node's box: centre and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub nodes: Vec<Placed>,
    /// For each edge given, the points of its path from its source to its target (empty
    /// for a self-loop).
    pub paths: Vec<Vec<(f64, f64)>>,
    /// The layer of each node, 0 at the top.
    pub layers: Vec<usize>,
    pub width: f64,
    pub height: f64,
}

/// Lays out nodes of the given sizes joined by `edges` (`from`, `to`). Roots are searched
/// first, in the order given (then the rest in index order), so the start comes on top.
pub fn layout(sizes: &[Size], edges: &[(usize, usize)], roots: &[usize]) -> Layout {
    let n = sizes.len();
    let edges: Vec<(usize, usize)> = edges
        .iter()
        .map(|&(a, b)| (a.min(n.saturating_sub(1)), b.min(n.saturating_sub(1))))
        .collect();
    if n == 0 {
        return Layout {
            nodes: Vec::new(),
            paths: vec![Vec::new(); edges.len()],
            layers: Vec::new(),
            width: 2.0 * MARGIN,
            height: 2.0 * MARGIN,
        };
    }
    let (reversed, visit_order) = break_cycles(n, &edges, roots);
    // The acyclic edges used for layering: back edges turned around, self-loops left out.
    let dag: Vec<(usize, usize)> = edges
        .iter()
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, &(a, b))| if reversed[i] { (b, a) } else { (a, b) })
        .collect();
    let layer = longest_path_layers(n, &dag);

    // Dummy nodes: every edge becomes a chain of one-layer segments.
    let mut node_layer = layer.clone();
    let mut widths: Vec<f64> = sizes.iter().map(|s| s.w + s.right.max(0.0)).collect();
    let mut heights: Vec<f64> = sizes.iter().map(|s| s.h).collect();
    let mut chains: Vec<Vec<usize>> = Vec::with_capacity(edges.len());
    let mut segments: Vec<(usize, usize)> = Vec::new();
    for (i, &(a, b)) in edges.iter().enumerate() {
        if a == b {
            chains.push(Vec::new());
            continue;
        }
        let (top, bottom) = if reversed[i] { (b, a) } else { (a, b) };
        let mut chain = vec![top];
        let mut prev = top;
        for l in layer[top] + 1..layer[bottom] {
            let d = node_layer.len();
            node_layer.push(l);
            widths.push(DUMMY_WIDTH);
            heights.push(0.0);
            segments.push((prev, d));
            chain.push(d);
            prev = d;
        }
        segments.push((prev, bottom));
        chain.push(bottom);
        chains.push(chain);
    }
    let total = node_layer.len();
    let depth = node_layer.iter().copied().max().unwrap_or(0) + 1;

    // Initial order: real nodes in search order, dummies after them.
    let mut rank = vec![usize::MAX; total];
    for (k, &v) in visit_order.iter().enumerate() {
        rank[v] = k;
    }
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); depth];
    let mut all: Vec<usize> = (0..total).collect();
    all.sort_by_key(|&v| (rank[v], v));
    for v in all {
        order[node_layer[v]].push(v);
    }
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); total];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); total];
    for &(a, b) in &segments {
        succs[a].push(b);
        preds[b].push(a);
    }
    let order = reduce_crossings(order, &preds, &succs, &segments, total);

    // Coordinates.
    let layer_height: Vec<f64> = (0..depth)
        .map(|l| order[l].iter().map(|&v| heights[v]).fold(0.0_f64, f64::max))
        .collect();
    let mut y = vec![0.0; total];
    let mut top = MARGIN;
    let mut layer_y = Vec::with_capacity(depth);
    for (l, h) in layer_height.iter().enumerate() {
        let cy = top + h / 2.0;
        layer_y.push(cy);
        for &v in &order[l] {
            y[v] = cy;
        }
        top += h + LAYER_GAP;
    }
    let x = place_x(&order, &widths, &preds, &succs, total);

    let mut min_x = f64::MAX;
    let mut max_x = f64::MIN;
    for v in 0..total {
        min_x = min_x.min(x[v] - widths[v] / 2.0);
        max_x = max_x.max(x[v] + widths[v] / 2.0);
    }
    let shift = MARGIN - min_x;
    let nodes: Vec<Placed> = (0..n)
        .map(|v| {
            let right = sizes[v].right.max(0.0);
            Placed {
                x: x[v] + shift - right / 2.0,
                y: y[v],
                w: widths[v] - right,
                h: heights[v],
            }
        })
        .collect();

    // Paths: from the source's edge, through the dummies, to the target's edge; ports
    // spread along the sides so edges sharing a node do not overlap.
    let mut paths: Vec<Vec<(f64, f64)>> = chains
        .iter()
        .map(|c| c.iter().map(|&v| (x[v] + shift, y[v])).collect())
        .collect();
    for (i, &(a, b)) in edges.iter().enumerate() {
        if a == b {
            continue;
        }
        if reversed[i] {
            paths[i].reverse();
        }
    }
    attach_ports(&mut paths, &edges, &nodes);
    Layout {
        nodes,
        paths,
        layers: layer,
        width: max_x - min_x + 2.0 * MARGIN,
        height: top - LAYER_GAP + MARGIN,
    }
}

/// Depth-first search from the roots; an edge to a node still on the stack is a back edge
/// and is reversed. Also gives the order nodes were first seen in.
fn break_cycles(n: usize, edges: &[(usize, usize)], roots: &[usize]) -> (Vec<bool>, Vec<usize>) {
    let mut out: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (i, &(a, b)) in edges.iter().enumerate() {
        out[a].push((b, i));
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    let mut reversed = vec![false; edges.len()];
    let mut seen = Vec::with_capacity(n);
    let starts = roots.iter().copied().filter(|&r| r < n).chain(0..n);
    for root in starts {
        if mark[root] != Mark::New {
            continue;
        }
        mark[root] = Mark::Open;
        seen.push(root);
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&(w, e)) = out[v].get(*next) {
                *next += 1;
                match mark[w] {
                    Mark::New => {
                        mark[w] = Mark::Open;
                        seen.push(w);
                        stack.push((w, 0));
                    }
                    Mark::Open if w != v => reversed[e] = true,
                    _ => {}
                }
            } else {
                mark[v] = Mark::Done;
                stack.pop();
            }
        }
    }
    (reversed, seen)
}

/// Each node one layer below its lowest predecessor (sources on layer 0).
fn longest_path_layers(n: usize, dag: &[(usize, usize)]) -> Vec<usize> {
    let mut indegree = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in dag {
        indegree[b] += 1;
        out[a].push(b);
    }
    let mut layer = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    ready.reverse();
    while let Some(v) = ready.pop() {
        for &w in &out[v] {
            layer[w] = layer[w].max(layer[v] + 1);
            indegree[w] -= 1;
            if indegree[w] == 0 {
                ready.push(w);
            }
        }
    }
    layer
}

fn crossings(order: &[Vec<usize>], segments: &[(usize, usize)], total: usize) -> usize {
    let mut pos = vec![0usize; total];
    let mut lay = vec![0usize; total];
    for (l, layer) in order.iter().enumerate() {
        for (i, &v) in layer.iter().enumerate() {
            pos[v] = i;
            lay[v] = l;
        }
    }
    let mut count = 0;
    for (i, &(a1, b1)) in segments.iter().enumerate() {
        for &(a2, b2) in segments.iter().skip(i + 1) {
            if lay[a1] != lay[a2] {
                continue;
            }
            let (p1, p2) = (pos[a1], pos[a2]);
            let (q1, q2) = (pos[b1], pos[b2]);
            if (p1 < p2 && q1 > q2) || (p1 > p2 && q1 < q2) {
                count += 1;
            }
        }
    }
    count
}

/// Sweeps down and up, sorting each layer by the mean position of its neighbours in the
/// layer before; keeps the order with the fewest crossings.
fn reduce_crossings(
    mut order: Vec<Vec<usize>>,
    preds: &[Vec<usize>],
    succs: &[Vec<usize>],
    segments: &[(usize, usize)],
    total: usize,
) -> Vec<Vec<usize>> {
    let mut best = order.clone();
    let mut best_count = crossings(&order, segments, total);
    let mut pos = vec![0.0f64; total];
    let set_pos = |order: &[Vec<usize>], pos: &mut [f64]| {
        for layer in order {
            for (i, &v) in layer.iter().enumerate() {
                pos[v] = i as f64;
            }
        }
    };
    for sweep in 0..ORDER_SWEEPS {
        set_pos(&order, &mut pos);
        let down = sweep % 2 == 0;
        let layers: Vec<usize> = if down {
            (1..order.len()).collect()
        } else {
            (0..order.len().saturating_sub(1)).rev().collect()
        };
        for l in layers {
            let neighbours = if down { preds } else { succs };
            let mut keyed: Vec<(f64, usize)> = order[l]
                .iter()
                .map(|&v| {
                    let ns = &neighbours[v];
                    let key = if ns.is_empty() {
                        pos[v]
                    } else {
                        ns.iter().map(|&u| pos[u]).sum::<f64>() / ns.len() as f64
                    };
                    (key, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            order[l] = keyed.into_iter().map(|(_, v)| v).collect();
            for (i, &v) in order[l].iter().enumerate() {
                pos[v] = i as f64;
            }
        }
        let c = crossings(&order, segments, total);
        if c < best_count {
            best_count = c;
            best = order.clone();
        }
        if best_count == 0 {
            break;
        }
    }
    best
}

/// x centres: packed left to right, then pulled towards the mean of their neighbours
/// while keeping order and spacing (the mean of a push-right and a push-left placement).
fn place_x(
    order: &[Vec<usize>],
    widths: &[f64],
    preds: &[Vec<usize>],
    succs: &[Vec<usize>],
    total: usize,
) -> Vec<f64> {
    let mut x = vec![0.0f64; total];
    let widest = order
        .iter()
        .map(|l| l.iter().map(|&v| widths[v] + NODE_GAP).sum::<f64>())
        .fold(0.0_f64, f64::max);
    for layer in order {
        let span: f64 = layer.iter().map(|&v| widths[v] + NODE_GAP).sum();
        let mut left = (widest - span) / 2.0;
        for &v in layer {
            x[v] = left + widths[v] / 2.0;
            left += widths[v] + NODE_GAP;
        }
    }
    for round in 0..PLACE_ROUNDS {
        let down = round % 2 == 0;
        let layers: Vec<usize> = if down {
            (1..order.len()).collect()
        } else {
            (0..order.len().saturating_sub(1)).rev().collect()
        };
        for l in layers {
            let layer = &order[l];
            let neighbours = if down { preds } else { succs };
            let want: Vec<f64> = layer
                .iter()
                .map(|&v| {
                    let ns = &neighbours[v];
                    if ns.is_empty() {
                        x[v]
                    } else {
                        ns.iter().map(|&u| x[u]).sum::<f64>() / ns.len() as f64
                    }
                })
                .collect();
            let sep = |i: usize| (widths[layer[i - 1]] + widths[layer[i]]) / 2.0 + NODE_GAP;
            let mut right = want.clone();
            for i in 1..layer.len() {
                right[i] = right[i].max(right[i - 1] + sep(i));
            }
            let mut left = want;
            for i in (1..layer.len()).rev() {
                left[i - 1] = left[i - 1].min(left[i] - sep(i));
            }
            for (i, &v) in layer.iter().enumerate() {
                x[v] = (right[i] + left[i]) / 2.0;
            }
        }
    }
    x
}

/// Moves each path's ends from the node centres to the node's bottom (leaving) or top
/// (arriving) side, spread over the side by the direction of the path's next point.
fn attach_ports(paths: &mut [Vec<(f64, f64)>], edges: &[(usize, usize)], nodes: &[Placed]) {
    // (node, is_top) -> [(path index, is_start, x of the neighbouring point)]
    type Ends = Vec<(usize, bool, f64)>;
    let mut sides: std::collections::BTreeMap<(usize, bool), Ends> =
        std::collections::BTreeMap::new();
    for (i, &(a, b)) in edges.iter().enumerate() {
        let p = &paths[i];
        if a == b || p.len() < 2 {
            continue;
        }
        let (first, second) = (p[0], p[1]);
        let (last, before) = (p[p.len() - 1], p[p.len() - 2]);
        // Leaving downwards uses the bottom side; upwards (a back edge) the top.
        let leaves_top = second.1 < first.1;
        sides
            .entry((a, leaves_top))
            .or_default()
            .push((i, true, second.0));
        let arrives_top = before.1 < last.1;
        sides
            .entry((b, arrives_top))
            .or_default()
            .push((i, false, before.0));
    }
    for ((node, top), mut list) in sides {
        let nd = nodes[node];
        list.sort_by(|a, b| a.2.total_cmp(&b.2));
        let k = list.len() as f64;
        let usable = nd.w * 0.6;
        for (j, (path, is_start, _)) in list.into_iter().enumerate() {
            let off = if k <= 1.0 {
                0.0
            } else {
                -usable / 2.0 + usable * j as f64 / (k - 1.0)
            };
            let y = if top {
                nd.y - nd.h / 2.0
            } else {
                nd.y + nd.h / 2.0
            };
            let p = &mut paths[path];
            let idx = if is_start { 0 } else { p.len() - 1 };
            p[idx] = (nd.x + off, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sz() -> Size {
        Size {
            w: 60.0,
            h: 30.0,
            right: 0.0,
        }
    }

    #[test]
    fn a_chain_goes_down_one_layer_per_node() {
        let l = layout(&[sz(), sz(), sz()], &[(0, 1), (1, 2)], &[0]);
        assert_eq!(l.layers, vec![0, 1, 2]);
        assert!(l.nodes[0].y < l.nodes[1].y && l.nodes[1].y < l.nodes[2].y);
        assert_eq!(l.paths[0].len(), 2);
    }

    #[test]
    fn cycles_are_broken_and_long_edges_get_bends() {
        // 0 -> 1 -> 2 -> 3, 3 -> 1 (a loop back), 0 -> 3 (a long edge)
        let l = layout(
            &[sz(), sz(), sz(), sz()],
            &[(0, 1), (1, 2), (2, 3), (3, 1), (0, 3)],
            &[0],
        );
        assert_eq!(l.layers, vec![0, 1, 2, 3]);
        // The back edge runs upwards from 3 to 1 through one bend.
        let back = &l.paths[3];
        assert_eq!(back.len(), 3);
        assert!(back[0].1 < l.nodes[3].y && back[2].1 > l.nodes[1].y);
        assert_eq!(l.paths[4].len(), 4);
    }

    #[test]
    fn barycentres_untangle_a_crossing() {
        // 0 -> 2, 1 -> 3 with 2 and 3 first seen in crossed order.
        let l = layout(
            &[sz(), sz(), sz(), sz(), sz()],
            &[(4, 0), (4, 1), (0, 3), (1, 2), (0, 2)],
            &[4],
        );
        let order_ok = (l.nodes[0].x < l.nodes[1].x) == (l.nodes[3].x < l.nodes[2].x)
            || (l.nodes[0].x < l.nodes[1].x) == (l.nodes[2].x < l.nodes[3].x);
        assert!(order_ok);
        for a in 0..5 {
            for b in a + 1..5 {
                let (p, q) = (l.nodes[a], l.nodes[b]);
                if l.layers[a] == l.layers[b] {
                    assert!((p.x - q.x).abs() >= (p.w + q.w) / 2.0, "overlap {a} {b}");
                }
            }
        }
    }
}
