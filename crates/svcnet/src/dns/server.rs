//! The DNS wire side of `svcnet dns`: a hickory-server request handler that answers each
//! query from the shared [`ClusterDns`] index, authoritative for the cluster zone.

use std::str::FromStr;
use std::sync::{Arc, RwLock};

use hickory_proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use svcnet_core::dns::{self, ClusterDns, Data, Outcome, QueryType};

/// Answers queries from `index`, which the watch keeps current.
pub struct Handler {
    pub index: Arc<RwLock<ClusterDns>>,
}

fn query_type(t: RecordType) -> QueryType {
    match t {
        RecordType::A => QueryType::A,
        RecordType::AAAA => QueryType::Aaaa,
        RecordType::CNAME => QueryType::Cname,
        RecordType::SRV => QueryType::Srv,
        RecordType::PTR => QueryType::Ptr,
        RecordType::TXT => QueryType::Txt,
        RecordType::ANY => QueryType::Any,
        _ => QueryType::Other,
    }
}

fn name(text: &str) -> Option<Name> {
    Name::from_str(&format!("{text}.")).ok()
}

/// One of the index's records as hickory's; `None` for a name that is not a valid DNS name
/// (an ExternalName target can be anything the API accepted).
fn record(r: &dns::Record) -> Option<Record> {
    let data = match &r.data {
        Data::A(ip) => RData::A(A(*ip)),
        Data::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        Data::Cname(target) => RData::CNAME(CNAME(name(target)?)),
        Data::Ptr(target) => RData::PTR(PTR(name(target)?)),
        Data::Txt(text) => RData::TXT(TXT::new(vec![text.clone()])),
        Data::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, name(target)?)),
    };
    Some(Record::from_rdata(name(&r.name)?, r.ttl, data))
}

/// The zone's SOA, sent with negative answers so resolvers cache them for [`dns::TTL`].
fn soa(index: &ClusterDns) -> Option<Record> {
    let (mname, rname) = index.soa_fields();
    let data = SOA::new(name(&mname)?, name(&rname)?, 1, 7200, 1800, 86400, dns::TTL);
    Some(Record::from_rdata(name(index.zone())?, dns::TTL, RData::SOA(data)))
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let (answers, additionals, authority) = match request.request_info() {
            Err(_) => {
                metadata.response_code = ResponseCode::FormErr;
                (vec![], vec![], vec![])
            }
            Ok(info) => {
                let asked = info.query.name().to_string();
                let index = self.index.read().unwrap_or_else(|e| e.into_inner());
                let outcome = index.resolve(&asked, query_type(info.query.query_type()));
                let negative = || soa(&index).into_iter().collect::<Vec<_>>();
                match outcome {
                    Outcome::Answer { answers, additionals } => {
                        metadata.authoritative = true;
                        (
                            answers.iter().filter_map(record).collect(),
                            additionals.iter().filter_map(record).collect(),
                            vec![],
                        )
                    }
                    Outcome::NoData => {
                        metadata.authoritative = true;
                        (vec![], vec![], negative())
                    }
                    Outcome::NxDomain => {
                        metadata.authoritative = true;
                        metadata.response_code = ResponseCode::NXDomain;
                        (vec![], vec![], negative())
                    }
                    Outcome::Refused => {
                        metadata.response_code = ResponseCode::Refused;
                        (vec![], vec![], vec![])
                    }
                }
            }
        };
        let reply = MessageResponseBuilder::from_message_request(request).build(
            metadata,
            answers.iter(),
            std::iter::empty(),
            authority.iter(),
            additionals.iter(),
        );
        match response.send_response(reply).await {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(error = %e, "dns: could not send a response");
                let mut failed = Metadata::response_from_request(&request.metadata);
                failed.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: failed,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}
