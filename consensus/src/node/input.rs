//! What reaches a node's loop: messages from peers, requests from clients and from
//! the process, and how each is answered.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::paxos::Role;
use crate::replica::RequestId;
use crate::types::{Membership, Message, NodeId, Slot};
use crate::wire::{ClientRequest, ClientResponse};

pub(super) enum Input {
    Peer(NodeId, Message),
    Client(ClientRequest, Reply),
    Status(oneshot::Sender<NodeStatus>),
    // A snapshot encoded off the loop, and its file written.
    SnapshotEncoded(Slot, Bytes),
    SnapshotWritten(Result<Slot, crate::StorageError>),
}

/// Where the answer to one request goes: a client connection's writer, with the tag the
/// client gave the request, or a caller in this process.
pub(super) enum Reply {
    Remote {
        tag: u64,
        tx: mpsc::UnboundedSender<(u64, ClientResponse)>,
    },
    Local(oneshot::Sender<ClientResponse>),
}

impl Reply {
    pub(super) fn send(self, resp: ClientResponse) {
        // The client may have gone; its answer goes nowhere.
        match self {
            Reply::Remote { tag, tx } => {
                let _ = tx.send((tag, resp));
            }
            Reply::Local(tx) => {
                let _ = tx.send(resp);
            }
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        match self {
            Reply::Remote { tx, .. } => tx.is_closed(),
            Reply::Local(tx) => tx.is_closed(),
        }
    }
}

/// One replica's view, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// This replica.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// The leader it knows, if any.
    pub leader: Option<NodeId>,
    /// Entries decided here.
    pub decided: Slot,
    /// The membership decided here.
    pub members: Membership,
    /// The newest membership in its log.
    pub latest: Membership,
}

/// A command's result as every replica applies it (see [`NodeHandle::subscribe`]).
#[derive(Debug, Clone)]
pub struct Applied {
    /// The request it came from.
    pub id: RequestId,
    /// What the state machine returned.
    pub result: Bytes,
}
