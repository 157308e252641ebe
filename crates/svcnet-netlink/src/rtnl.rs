//! Links, addresses and routes over rtnetlink, inside a chosen network namespace: what the
//! lab's topology needs, without the `ip` program. Each call is one request, acknowledged
//! before it returns; a refusal comes back as the kernel's errno with what was asked.

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::socket::exchange;
use crate::wire::{Attrs, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, Writer};
use ipnet::IpNet;
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;

const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFF_UP: u32 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const RT_TABLE_LOCAL: u8 = 255;
const RT_SCOPE_HOST: u8 = 254;
const RTN_LOCAL: u8 = 2;

const AF_UNSPEC: u8 = 0;

fn family(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() { 2 } else { 10 }
}

fn octets(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `ifinfomsg`: family, type, index, flags and the flags to change.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0] = AF_UNSPEC;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

/// A route socket inside one network namespace.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    /// A socket in the named namespace (`/run/netns/NAME`).
    pub fn open_in(netns: &str) -> io::Result<Self> {
        let socket = crate::netns::in_netns(netns, || {
            let mut socket = Socket::new(NETLINK_ROUTE)?;
            socket.bind_auto()?;
            socket.set_cap_ack(true)?;
            Ok(socket)
        })?;
        Ok(Rtnl { socket, seq: 1 })
    }

    /// Sends one request and returns the answers before its acknowledgement.
    fn request(
        &mut self,
        msg_type: u16,
        flags: u16,
        header: &[u8],
        attrs: impl FnOnce(&mut Writer),
    ) -> io::Result<Vec<Vec<u8>>> {
        let seq = self.seq;
        self.seq += 1;
        let mut w = Writer::default();
        w.begin_with(msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, seq, header);
        attrs(&mut w);
        w.end();
        exchange(&self.socket, &w.buf, seq)
    }

    /// The index of the interface called `name`.
    pub fn index(&mut self, name: &str) -> io::Result<u32> {
        // an answer comes before the acknowledgement (NLM_F_ACK on a get)
        let answers = self.request(RTM_GETLINK, 0, &ifinfomsg(0, 0, 0), |w| w.put_str(IFLA_IFNAME, name))?;
        let first = answers
            .first()
            .ok_or_else(|| io::Error::other(format!("no interface {name}")))?;
        let index = first
            .get(4..8)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
            .ok_or_else(|| io::Error::other("short link answer"))?;
        Ok(index)
    }

    /// A veth pair: `name` here, `peer` in the namespace `peer_netns`.
    pub fn add_veth(&mut self, name: &str, peer: &str, peer_netns: &str) -> io::Result<()> {
        let ns = File::open(Path::new(crate::netns::NETNS_DIR).join(peer_netns))?;
        let fd = ns.as_raw_fd() as u32;
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifinfomsg(0, 0, 0), |w| {
            w.put_str(IFLA_IFNAME, name);
            w.open(IFLA_LINKINFO);
            w.put_str(IFLA_INFO_KIND, "veth");
            w.open(IFLA_INFO_DATA);
            w.open(VETH_INFO_PEER);
            w.buf.extend_from_slice(&ifinfomsg(0, 0, 0));
            w.put_str(IFLA_IFNAME, peer);
            w.put(IFLA_NET_NS_FD, &fd.to_ne_bytes());
            w.close();
            w.close();
            w.close();
        })
        .map(drop)
        .map_err(|e| context(e, &format!("add veth {name} (peer {peer} in {peer_netns})")))
    }

    pub fn add_bridge(&mut self, name: &str) -> io::Result<()> {
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifinfomsg(0, 0, 0), |w| {
            w.put_str(IFLA_IFNAME, name);
            w.open(IFLA_LINKINFO);
            w.put_str(IFLA_INFO_KIND, "bridge");
            w.close();
        })
        .map(drop)
        .map_err(|e| context(e, &format!("add bridge {name}")))
    }

    pub fn set_up(&mut self, name: &str) -> io::Result<()> {
        let index = self.index(name)?;
        self.request(RTM_NEWLINK, 0, &ifinfomsg(index, IFF_UP, IFF_UP), |_| {})
            .map(drop)
            .map_err(|e| context(e, &format!("set {name} up")))
    }

    /// Enslaves `name` to the bridge `master`.
    pub fn set_master(&mut self, name: &str, master: &str) -> io::Result<()> {
        let (index, master_index) = (self.index(name)?, self.index(master)?);
        self.request(RTM_NEWLINK, 0, &ifinfomsg(index, 0, 0), |w| {
            w.put(IFLA_MASTER, &master_index.to_ne_bytes());
        })
        .map(drop)
        .map_err(|e| context(e, &format!("set {name} master {master}")))
    }

    /// `addr` (with its prefix) on `dev`.
    pub fn add_address(&mut self, dev: &str, addr: IpNet) -> io::Result<()> {
        let index = self.index(dev)?;
        let ip = addr.addr();
        let header = ifaddrmsg(&addr, index);
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &header, |w| {
            w.put(IFA_LOCAL, &octets(&ip));
            w.put(IFA_ADDRESS, &octets(&ip));
        })
        .map(drop)
        .map_err(|e| context(e, &format!("add address {addr} on {dev}")))
    }

    /// Removes `addr` (with its prefix) from `dev`.
    pub fn delete_address(&mut self, dev: &str, addr: IpNet) -> io::Result<()> {
        let index = self.index(dev)?;
        let header = ifaddrmsg(&addr, index);
        self.request(RTM_DELADDR, 0, &header, |w| {
            w.put(IFA_LOCAL, &octets(&addr.addr()));
        })
        .map(drop)
        .map_err(|e| context(e, &format!("delete address {addr} from {dev}")))
    }

    /// The addresses (with prefixes) on `dev`, in the kernel's order (primary first).
    pub fn addresses(&mut self, dev: &str) -> io::Result<Vec<IpNet>> {
        let index = self.index(dev)?;
        let answers = self.request(RTM_GETADDR, NLM_F_DUMP, &[0u8; 8], |_| {})?;
        let mut out = Vec::new();
        for payload in answers {
            let Some(header) = payload.get(..8) else { continue };
            if u32::from_ne_bytes(header[4..8].try_into().expect("4 bytes")) != index {
                continue;
            }
            let prefix = header[1];
            let attrs = || Attrs(&payload[8..]);
            let Some(value) = attrs()
                .find(|a| a.kind == IFA_LOCAL)
                .or_else(|| attrs().find(|a| a.kind == IFA_ADDRESS))
                .map(|a| a.value)
            else {
                continue;
            };
            let ip = if let Ok(v4) = <[u8; 4]>::try_from(value) {
                IpAddr::from(v4)
            } else if let Ok(v6) = <[u8; 16]>::try_from(value) {
                IpAddr::from(v6)
            } else {
                continue;
            };
            if let Ok(net) = IpNet::new(ip, prefix) {
                out.push(net);
            }
        }
        Ok(out)
    }

    /// A route to `dst` through the gateway `via`, or directly on `dev` (scope link).
    pub fn add_route(&mut self, dst: IpNet, via: Option<IpAddr>, dev: Option<&str>) -> io::Result<()> {
        self.write_route(NLM_F_CREATE | NLM_F_EXCL, dst, via, dev)
            .map_err(|e| context(e, &format!("add route {dst}")))
    }

    /// Like [`Rtnl::add_route`], replacing a route to `dst` that is already there.
    pub fn replace_route(&mut self, dst: IpNet, via: Option<IpAddr>, dev: Option<&str>) -> io::Result<()> {
        self.write_route(NLM_F_CREATE | NLM_F_REPLACE, dst, via, dev)
            .map_err(|e| context(e, &format!("replace route {dst}")))
    }

    /// Makes every address in `dst` an address of this namespace (a `local` route on `dev`,
    /// usually `lo`): sockets bound to the wildcard address answer for all of them.
    pub fn add_local_route(&mut self, dst: IpNet, dev: &str) -> io::Result<()> {
        let oif = self.index(dev)?;
        let mut header = route_header(&dst, RT_SCOPE_HOST);
        header[4] = RT_TABLE_LOCAL;
        header[7] = RTN_LOCAL;
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &header, |w| {
            w.put(RTA_DST, &octets(&dst.network()));
            w.put(RTA_OIF, &oif.to_ne_bytes());
        })
        .map(drop)
        .map_err(|e| context(e, &format!("add local route {dst}")))
    }

    /// Removes the route to `dst` (whatever its gateway); one that is not there is not an error.
    pub fn delete_route(&mut self, dst: IpNet) -> io::Result<()> {
        let mut header = route_header(&dst, RT_SCOPE_UNIVERSE);
        header[5] = 0; // any protocol
        header[7] = 0; // any type
        match self.request(RTM_DELROUTE, 0, &header, |w| {
            if dst.prefix_len() > 0 {
                w.put(RTA_DST, &octets(&dst.network()));
            }
        }) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(3) => Ok(()), // ESRCH: no such route
            Err(e) => Err(context(e, &format!("delete route {dst}"))),
        }
    }

    fn write_route(&mut self, flags: u16, dst: IpNet, via: Option<IpAddr>, dev: Option<&str>) -> io::Result<()> {
        let oif = dev.map(|d| self.index(d)).transpose()?;
        let header = route_header(
            &dst,
            if via.is_some() {
                RT_SCOPE_UNIVERSE
            } else {
                RT_SCOPE_LINK
            },
        );
        self.request(RTM_NEWROUTE, flags, &header, |w| {
            if dst.prefix_len() > 0 {
                w.put(RTA_DST, &octets(&dst.network()));
            }
            if let Some(gw) = via {
                w.put(RTA_GATEWAY, &octets(&gw));
            }
            if let Some(i) = oif {
                w.put(RTA_OIF, &i.to_ne_bytes());
            }
        })
        .map(drop)
    }
}

/// `ifaddrmsg`: family, prefix length, flags, scope and interface index.
fn ifaddrmsg(addr: &IpNet, index: u32) -> [u8; 8] {
    /// `IFA_F_NODAD`: an IPv6 address is usable at once, without duplicate address detection
    /// (every address here is planned, none can be a duplicate).
    const IFA_F_NODAD: u8 = 0x02;
    let mut header = [0u8; 8];
    header[0] = family(&addr.addr());
    header[1] = addr.prefix_len();
    if addr.addr().is_ipv6() {
        header[2] = IFA_F_NODAD;
    }
    header[4..8].copy_from_slice(&index.to_ne_bytes());
    header
}

/// `rtmsg` for a unicast route to `dst` in the main table.
fn route_header(dst: &IpNet, scope: u8) -> [u8; 12] {
    let mut header = [0u8; 12];
    header[0] = family(&dst.addr());
    header[1] = dst.prefix_len();
    header[4] = RT_TABLE_MAIN;
    header[5] = RTPROT_BOOT;
    header[6] = scope;
    header[7] = RTN_UNICAST;
    header
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
