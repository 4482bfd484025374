//! Issue 19, the dashboard's depth: the run tree (collapsible, ASCII), and the
//! dialogs and views built on it, as snapshots at 80x24 and 160x48.

use crossterm::event::KeyCode;
use pipedeck::tui::app::{AppState, NodeId, View};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

#[path = "common/tui.rs"]
mod fixtures;
use fixtures::*;

fn both(name: &str, s: &AppState) {
    insta::assert_snapshot!(format!("{name}_80x24"), draw(s, 80, 24));
    insta::assert_snapshot!(format!("{name}_160x48"), draw(s, 160, 48));
}

#[test]
fn run_tree_expanded_and_collapsed() {
    let mut s = infra_state();
    // To db in the DAG (as in tui_views), then its stack job.
    for c in ['l', 'j', 'l'] {
        key(&mut s, KeyCode::Char(c));
    }
    key(&mut s, KeyCode::Enter);
    assert_eq!(s.view, View::Detail);
    assert_eq!(s.selected_step().map(|x| x.name.as_str()), Some("db"));
    both("tree_expanded", &s);
    // h collapses db; k, k, h collapse subnet-private's operations too (k walks
    // the visible nodes: subnet-private's apply, then subnet-private).
    key(&mut s, KeyCode::Char('h'));
    for _ in 0..4 {
        key(&mut s, KeyCode::Char('k'));
    }
    assert_eq!(
        s.selected_step().map(|x| x.name.as_str()),
        Some("subnet-private")
    );
    key(&mut s, KeyCode::Char('h'));
    both("tree_collapsed", &s);
    // Space on the section collapses everything; l opens it again.
    key(&mut s, KeyCode::Char('h'));
    key(&mut s, KeyCode::Char(' '));
    assert_eq!(s.visible_nodes().len(), 1);
    key(&mut s, KeyCode::Char('l'));
    assert_eq!(s.visible_nodes().len(), 1 + 6 + 4 * 3);
    // ASCII glyphs, no colour.
    s.ascii = true;
    s.color = false;
    both("tree_ascii", &s);
}

#[test]
fn a_click_selects_the_tree_node_under_it() {
    let mut s = detail_state();
    s.screen_height = 24;
    let km = pipedeck::tui::keymap::Keymap::default();
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| pipedeck::tui::views::render(f, &s, &km))
        .unwrap();
    // Row 5 is the tree's first row (title bar, the run header's three, the border).
    pipedeck::tui::update::click(&mut s, 6, 5);
    assert_eq!(
        s.tree.selected,
        vec![NodeId::Section(pipedeck::domain::Stage::Build)]
    );
    let e = pipedeck::tui::update::click(&mut s, 6, 7);
    assert_eq!(s.selected_step().map(|x| x.name.as_str()), Some("compile"));
    assert!(e.is_some(), "the log pane loads the clicked step's log");
    // A click on the log pane leaves the selection alone.
    pipedeck::tui::update::click(&mut s, 60, 7);
    assert_eq!(s.selected_step().map(|x| x.name.as_str()), Some("compile"));
}
