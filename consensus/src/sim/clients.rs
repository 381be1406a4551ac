//! Simulated clients: each proposes its workload's requests, retries on timeout or
//! redirect, and records what was acknowledged.

use super::*;

impl<W: Workload> Sim<W> {
    pub(super) fn client_start(&mut self, c: usize) -> Result<(), String> {
        if !self.faults_on && self.clients[c].after_heal >= AFTER_HEAL_OPS {
            return Ok(());
        }
        let request = self.workload.next(c, self.now, &mut self.rng);
        let client = &mut self.clients[c];
        client.invoked = self.now;
        client.seq += 1;
        client.op = Some(request);
        client.attempt = 0;
        self.client_retry(c, false)
    }

    pub(super) fn client_retry(&mut self, c: usize, timed_out: bool) -> Result<(), String> {
        let n = self.nodes.len();
        // Prefer the replica believed to lead; otherwise another one at random.
        let hint = self.clients[c].node;
        let known = self.nodes[hint]
            .replica
            .as_ref()
            .and_then(|r| r.core().leader())
            .map(|b| (b.node - 1) as usize);
        // A replica that knows no leader (one waiting to be added, say) sends the client
        // elsewhere, as a timeout does.
        let target = match known {
            Some(l) if !timed_out => l,
            _ => self.rng.range(0, n as u64) as usize,
        };
        let client = &mut self.clients[c];
        client.attempt += 1;
        client.node = target;
        let attempt = client.attempt;
        let Some(op) = client.op.clone() else {
            return Ok(());
        };
        let seq = client.seq;
        self.clients[c].read_id = (c as u64) << 32 | attempt;
        let read_id = self.clients[c].read_id;
        if let Some(r) = self.nodes[target].replica.as_mut() {
            match &op {
                Request::Propose(command) => {
                    let _ = r.propose((c as u64 + 1, seq), command);
                }
                Request::Read(query) => r.read(read_id, query),
            }
            self.process(target)?;
        }
        let timeout = self.rng.range(100_000, 200_000);
        self.schedule(timeout, Event::ClientTimeout(c, attempt));
        Ok(())
    }

    pub(super) fn client_outcome(&mut self, node: usize, o: Outcome) -> Result<(), String> {
        for c in 0..self.clients.len() {
            let client = &self.clients[c];
            if client.node != node {
                continue;
            }
            let Some(op) = client.op.clone() else {
                continue;
            };
            let done = match (&op, &o) {
                (Request::Propose(_), Outcome::Applied(id, result))
                    if *id == (c as u64 + 1, client.seq) =>
                {
                    self.acked_proposals.push(*id);
                    Some(result.clone())
                }
                (Request::Read(_), Outcome::Read(id, v)) if *id == client.read_id => {
                    if self.nodes[node]
                        .replica
                        .as_ref()
                        .is_some_and(|r| r.core().has_lease())
                    {
                        self.report.lease_reads += 1;
                    }
                    Some(v.clone())
                }
                (Request::Read(_), Outcome::ReadRefused(id)) if *id == client.read_id => {
                    // Try the leader this replica knows, shortly.
                    let attempt = client.attempt;
                    let wait = self.rng.range(1_000, 5_000);
                    self.schedule(wait, Event::ClientRetry(c, attempt));
                    None
                }
                _ => None,
            };
            if let Some(v) = done {
                self.workload.returned(c, self.now, v)?;
                self.clients[c].op = None;
                if !self.faults_on && self.clients[c].invoked >= self.cfg.fault_time {
                    self.clients[c].after_heal += 1;
                }
                self.report.completed += 1;
                let think = self.workload.think(c, &mut self.rng);
                self.schedule(think, Event::ClientStart(c));
            }
        }
        Ok(())
    }
}
