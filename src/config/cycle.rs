//! Finding a cycle in a dependency graph (steps, infra resources, chains), as the
//! path an error message names.

use petgraph::graph::DiGraph;

/// A cycle as a path of node weights `a -> b -> ... -> a` following edges, if any.
pub(crate) fn find_cycle(graph: &DiGraph<usize, ()>) -> Option<Vec<usize>> {
    use petgraph::visit::EdgeRef;
    // Iterative DFS with colours; the grey stack is the current path.
    let n = graph.node_count();
    let mut colour = vec![0u8; n];
    for start in graph.node_indices() {
        if colour[start.index()] != 0 {
            continue;
        }
        let mut stack = vec![(
            start,
            graph.edges(start).map(|e| e.target()).collect::<Vec<_>>(),
        )];
        colour[start.index()] = 1;
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            match next.pop() {
                Some(t) if colour[t.index()] == 1 => {
                    let pos = stack.iter().position(|(n, _)| *n == t).unwrap_or(0);
                    let mut path: Vec<usize> =
                        stack[pos..].iter().map(|(n, _)| graph[*n]).collect();
                    path.push(graph[t]);
                    return Some(path);
                }
                Some(t) if colour[t.index()] == 0 => {
                    colour[t.index()] = 1;
                    let succ = graph.edges(t).map(|e| e.target()).collect();
                    stack.push((t, succ));
                }
                Some(_) => {}
                None => {
                    colour[node.index()] = 2;
                    stack.pop();
                }
            }
        }
    }
    None
}
