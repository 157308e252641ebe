//! A lab's name and API address belong to one lab: two `lab up` of one name at the same
//! moment do not destroy each other (one wins, the other is told the name is taken), and an
//! API address in use is named as such.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::{Lab, SVCNET, fresh_name};

#[test]
fn two_ups_of_one_name_at_once_leave_one_working_lab() {
    let name = fresh_name();
    // taken down on drop whatever happens
    let lab = Lab {
        kubeconfig: PathBuf::from(format!("/run/svcnet-lab/{name}/apiserver/kubeconfig")),
        name: name.clone(),
    };
    let start = || {
        Command::new(SVCNET)
            .args(["lab", "up", "--name", &name, "--nodes", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let won = outputs.iter().filter(|o| o.status.success()).count();
    let lost: Vec<String> = outputs
        .iter()
        .filter(|o| !o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert_eq!(won, 1, "exactly one lab up must win: {lost:?}");
    assert!(
        lost[0].contains("the name is taken") || lost[0].contains("is already up"),
        "{}",
        lost[0]
    );
    // the winner's lab is whole: its node is Ready
    let (ok, nodes) = lab.kubectl(&["get", "nodes", "-o", "name"]);
    assert!(ok && nodes.contains("node/node-1"), "{nodes}");
    let status = Command::new(SVCNET)
        .args(["lab", "status", "--name", &name])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
}

#[test]
fn an_api_address_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let name = fresh_name();
    let out = Command::new(SVCNET)
        .args(["lab", "up", "--name", &name, "--nodes", "1", "--api-listen", &address])
        .output()
        .unwrap();
    let _ = Command::new(SVCNET).args(["lab", "down", "--name", &name]).output();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{address} is in use")), "{stderr}");
}

/// `ip netns add` after the lab's namespaces exist (someone exploring the machine) must not
/// leave them where `lab down` cannot remove them: the first `ip netns add` binds
/// `/run/netns` over itself unless it already is a mount, which the lab makes it.
#[test]
fn a_namespace_added_with_ip_afterwards_does_not_strand_the_lab_s() {
    let lab = Lab::up(1);
    let other = format!("svt-{}-ipadd", std::process::id());
    struct Other(String);
    impl Drop for Other {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    assert!(
        Command::new("ip")
            .args(["netns", "add", &other])
            .status()
            .unwrap()
            .success()
    );
    let _other = Other(other);
    let said = lab.down();
    assert!(said.contains("is down"), "{said}");
    let left: Vec<String> = svcnet::netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&format!("svl-{}-", lab.name)))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
