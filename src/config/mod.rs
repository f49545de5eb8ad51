//! Stand-in with the agreed API; replaced by the config branch on merge.
#![allow(missing_docs)]
use std::{net::SocketAddr, path::{Path, PathBuf}, time::Duration};
#[derive(Debug, Clone, Copy, PartialEq, Eq)] pub enum Workers { Auto, Count(usize) }
#[derive(Debug, Clone, Copy, PartialEq, Eq)] pub enum PinWorkers { Auto, On, Off }
#[derive(Debug, Clone, Copy, PartialEq, Eq)] pub enum DriverChoice { Auto, IoUring, Epoll }
#[derive(Debug, Clone)] pub struct Config { pub source: PathBuf, pub workers: Workers, pub pin_workers: PinWorkers, pub driver: DriverChoice, pub admin: Option<SocketAddr>, pub listeners: Vec<Listener>, pub clusters: Vec<Cluster> }
#[derive(Debug, Clone)] pub struct Listener { pub name: String, pub address: SocketAddr, pub routes: Vec<Route>, pub http1: Http1Settings, pub header_read_timeout: Duration, pub idle_timeout: Duration }
#[derive(Debug, Clone, Default)] pub struct Http1Settings { pub max_request_line: usize, pub max_request_head: usize, pub max_headers: usize, pub max_chunk_extension: usize, pub max_trailer_section: usize }
#[derive(Debug, Clone)] pub struct Route { pub matcher: RouteMatch, pub action: RouteAction, pub timeout: Duration }
#[derive(Debug, Clone)] pub enum RouteMatch { Prefix(String), Path(String) }
#[derive(Debug, Clone)] pub enum RouteAction { Cluster(String), DirectResponse(DirectResponse) }
#[derive(Debug, Clone)] pub struct DirectResponse { pub status: u16, pub body: bytes::Bytes, pub content_type: String }
#[derive(Debug, Clone)] pub struct Cluster { pub name: String, pub endpoints: Vec<Endpoint> }
#[derive(Debug, Clone)] pub struct Endpoint { pub address: SocketAddr }
#[derive(Debug, Clone)] pub struct ConfigError { pub file: PathBuf, pub line: usize, pub column: usize, pub path: String, pub message: String }
#[derive(Debug, Clone)] pub struct ConfigErrors(pub Vec<ConfigError>);
impl std::fmt::Display for ConfigErrors { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{:?}", self.0) } }
impl std::error::Error for ConfigErrors {}
impl Config { pub fn load(_p: &Path) -> Result<Config, ConfigErrors> { Err(ConfigErrors(vec![])) } pub fn parse(_t: &str, _s: &Path) -> Result<Config, ConfigErrors> { Err(ConfigErrors(vec![])) } }
