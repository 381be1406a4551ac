//! Requests to a replica from the process that runs it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::input::{Applied, Input, NodeStatus, Reply};
use crate::paxos::MembershipChange;
use crate::types::NodeId;
use crate::wire::{ClientRequest, ClientResponse};

/// Requests to a replica from the process that runs it. Clones share the replica.
///
/// A proposal is applied exactly once however often it is retried: each call takes a
/// client identity that has no other request outstanding (identities are reused, so the
/// replicas' table of answered requests stays as small as the concurrency).
#[derive(Clone)]
pub struct NodeHandle {
    pub(super) inputs: mpsc::Sender<Input>,
    pub(super) applied: broadcast::Sender<Applied>,
    pub(super) sessions: Arc<std::sync::Mutex<Vec<(u64, u64)>>>,
}

/// Why a request from [`NodeHandle`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// No leader took the request before the deadline (no quorum reachable, say).
    #[error("no leader decided the request within {0:?}")]
    Unavailable(Duration),
    /// A linearizable read must go to the leader; this replica is not it.
    #[error("this replica is not the leader (leader: {0:?})")]
    NotLeader(Option<NodeId>),
    /// The replica refused the request.
    #[error("refused: {0}")]
    Refused(String),
    /// The replica has stopped.
    #[error("the replica has stopped")]
    Stopped,
}

/// How long one attempt waits before it is retried (with the same request id).
const ATTEMPT: Duration = Duration::from_secs(1);

impl NodeHandle {
    async fn ask(&self, req: ClientRequest) -> Result<ClientResponse, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.inputs
            .send(Input::Client(req, Reply::Local(tx)))
            .await
            .map_err(|_| NodeError::Stopped)?;
        match tokio::time::timeout(ATTEMPT, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(NodeError::Stopped),
            // Forwarded to a leader that went away, say: the caller retries.
            Err(_) => Ok(ClientResponse::Redirect { leader: 0 }),
        }
    }

    /// Proposes `command` and returns what the state machine made of it, once this
    /// replica has applied it; retried (applied once) until `deadline`.
    pub async fn propose(&self, command: Bytes, deadline: Duration) -> Result<Bytes, NodeError> {
        let (client, seq) = {
            let mut free = self.sessions.lock().map_err(|_| NodeError::Stopped)?;
            match free.pop() {
                Some((c, s)) => (c, s + 1),
                None => (crate::net::random_u64() | 1, 1),
            }
        };
        let start = tokio::time::Instant::now();
        let result = loop {
            let req = ClientRequest::Propose {
                client,
                seq,
                command: command.clone(),
            };
            match self.ask(req).await {
                Ok(ClientResponse::Ok(v)) => break Ok(v),
                Ok(ClientResponse::Error(e)) => break Err(NodeError::Refused(e)),
                Ok(ClientResponse::Redirect { .. }) => {
                    if start.elapsed() >= deadline {
                        break Err(NodeError::Unavailable(deadline));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => break Err(e),
            }
        };
        // The identity is free again only once its request is answered for good (an
        // abandoned one might still be applied later, and a reuse would look like a retry).
        if result.is_ok() {
            if let Ok(mut free) = self.sessions.lock() {
                free.push((client, seq));
            }
        }
        result
    }

    /// Reads linearizably; only the leader answers ([`NodeError::NotLeader`] elsewhere).
    pub async fn read(&self, query: Bytes) -> Result<Bytes, NodeError> {
        match self.ask(ClientRequest::Read { query }).await? {
            ClientResponse::Ok(v) => Ok(v),
            ClientResponse::Error(e) => Err(NodeError::Refused(e)),
            ClientResponse::Redirect { leader } => {
                Err(NodeError::NotLeader((leader != 0).then_some(leader)))
            }
        }
    }

    /// Every command's result as this replica applies it, from now on. A receiver that
    /// falls behind loses the oldest (and learns so from `recv`).
    pub fn subscribe(&self) -> broadcast::Receiver<Applied> {
        self.applied.subscribe()
    }

    /// The replica's view.
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.inputs
            .send(Input::Status(tx))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Asks this replica, if it leads, to change the membership; answered once decided.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), NodeError> {
        let req = match change {
            MembershipChange::Add { id, addr } => ClientRequest::AddMember { id, addr },
            MembershipChange::Remove(id) => ClientRequest::RemoveMember { id },
        };
        match self.ask(req).await? {
            ClientResponse::Ok(_) => Ok(()),
            ClientResponse::Error(e) => Err(NodeError::Refused(e)),
            ClientResponse::Redirect { leader } => {
                Err(NodeError::NotLeader((leader != 0).then_some(leader)))
            }
        }
    }
}
