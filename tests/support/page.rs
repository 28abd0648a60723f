//! Drives one page (not the whole app) in egui_kittest: the page's jobs run on a tokio runtime
//! and their messages are fed back to `on_msg` on the next frame, as the app does.

#![allow(dead_code)]

use std::sync::mpsc;

use autopilot_wizard::graph::GraphClient;
use autopilot_wizard::steps::Outcomes;
use autopilot_wizard::ui::{self, Job, Outbox, Page, PageCx, Session};
use egui_kittest::Harness;

pub struct PageState<P: Page> {
    pub page: P,
    pub session: Session,
    pub outcomes: Outcomes,
    /// The devices the page handed to "Remove devices" (`PageCx::request_removal`), if any.
    pub removal_request: Option<Vec<String>>,
    jobs: Vec<Job>,
    tx: mpsc::Sender<ui::Msg>,
    rx: mpsc::Receiver<ui::Msg>,
    rt: tokio::runtime::Handle,
    extract: fn(ui::Msg) -> Option<P::Msg>,
}

/// A harness showing `page`, signed in with `graph`, starting from `outcomes`.
pub fn page_harness<P: Page + 'static>(
    page: P,
    graph: GraphClient,
    outcomes: Outcomes,
    rt: tokio::runtime::Handle,
    extract: fn(ui::Msg) -> Option<P::Msg>,
) -> Harness<'static, PageState<P>> {
    let (tx, rx) = mpsc::channel();
    let state = PageState {
        page,
        session: Session {
            graph: Some(graph),
            simulated: true,
        },
        outcomes,
        removal_request: None,
        jobs: Vec::new(),
        tx,
        rx,
        rt,
        extract,
    };
    Harness::builder()
        .with_size([1000.0, 900.0])
        .build_ui_state(
            |ui, st: &mut PageState<P>| {
                while let Ok(msg) = st.rx.try_recv() {
                    if let Some(m) = (st.extract)(msg) {
                        let mut cx = PageCx::new(&mut st.session, &mut st.outcomes, &mut st.jobs);
                        st.page.on_msg(m, &mut cx);
                    }
                }
                egui::ScrollArea::vertical().show(ui, |ui| {
                    let mut cx = PageCx::new(&mut st.session, &mut st.outcomes, &mut st.jobs);
                    st.page.ui(ui, &mut cx);
                    if let Some(r) = cx.take_removal_request() {
                        st.removal_request = Some(r);
                    }
                });
                for job in st.jobs.drain(..) {
                    let out = Outbox::new(st.tx.clone(), ui.ctx().clone());
                    st.rt.spawn((job.run)(out));
                }
            },
            state,
        )
}
