//! The router (WebSocket-Node's `WebSocketRouter`): dispatches upgrade requests by path and
//! requested subprotocol.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wsflow_handshake::AcceptOptions;

use crate::error::Error;
use crate::server::Request;
use crate::websocket::WebSocket;

type Handler = Arc<dyn Fn(RoutedRequest) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A path to match: exact (`/chat`), everything (`*`), or a pattern where `*` matches any run
/// of characters (`/rooms/*`, `/api/*/events`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum PathPattern {
    Any,
    Exact(String),
    Glob(Vec<String>),
}

impl PathPattern {
    fn parse(path: &str) -> Self {
        if path == "*" {
            Self::Any
        } else if path.contains('*') {
            Self::Glob(path.split('*').map(str::to_owned).collect())
        } else {
            Self::Exact(path.to_owned())
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => exact == path,
            Self::Glob(parts) => glob_match(parts, path),
        }
    }
}

/// Whether `text` is `parts` joined by runs of any characters.
fn glob_match(parts: &[String], text: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return text.is_empty();
    };
    let Some(mut remaining) = text.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part.as_str()) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.ends_with(last.as_str())
}

/// Which requested subprotocol a route serves.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ProtocolPattern {
    /// Requests that asked for no subprotocol.
    None,
    /// Any subprotocol (and none).
    Any,
    /// This subprotocol (lower-cased).
    Named(String),
}

struct Route {
    path: PathPattern,
    path_source: String,
    protocol: ProtocolPattern,
    handler: Handler,
}

/// A request the router matched, with the subprotocol it matched on (WebSocket-Node's
/// `WebSocketRouterRequest`).
#[derive(Debug)]
pub struct RoutedRequest {
    /// The request.
    pub request: Request,
    /// The subprotocol the route matched (`None` when the client asked for none).
    pub protocol: Option<String>,
}

impl RoutedRequest {
    /// Accepts with the matched subprotocol.
    pub async fn accept(self) -> Result<WebSocket, Error> {
        self.request.accept(self.protocol.as_deref()).await
    }

    /// Accepts with the matched subprotocol and `options` for the rest of the 101 answer
    /// (cookies, extra headers: WebSocket-Node's `accept(origin, cookies)`); the subprotocol
    /// set in `options` is replaced by the matched one.
    pub async fn accept_with(self, options: AcceptOptions) -> Result<WebSocket, Error> {
        let options = options.protocol(self.protocol.as_deref());
        self.request.accept_with(options).await
    }

    /// Rejects with `status` and an optional reason.
    pub async fn reject(self, status: u16, reason: Option<&str>) -> Result<(), Error> {
        self.request.reject(status, reason).await
    }
}

/// Dispatches upgrade requests to handlers by path and requested subprotocol
/// (WebSocket-Node's `WebSocketRouter`).
///
/// For each subprotocol the client requested, in the client's order, the first route (in
/// mount order) whose path matches and that serves that subprotocol gets the request. A
/// client that requested none matches routes mounted with `None` (or `Some("*")`). No match:
/// 404.
///
/// ```no_run
/// # async fn example() -> Result<(), wsflow::Error> {
/// use futures_util::StreamExt;
/// use wsflow::{Router, Server, ServerConfig};
///
/// let mut router = Router::new();
/// router.mount("/chat", Some("chat"), |routed| async move {
///     if let Ok(mut ws) = routed.accept().await {
///         while let Some(Ok(message)) = ws.next().await {
///             let _ = ws.send(message).await;
///         }
///     }
/// });
/// let mut server = Server::bind("127.0.0.1:8080", ServerConfig::default()).await?;
/// while let Some(request) = server.next().await {
///     tokio::spawn(router.dispatch(request));
/// }
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.routes
                    .iter()
                    .map(|route| (&route.path_source, &route.protocol)),
            )
            .finish()
    }
}

impl Router {
    /// A router with no routes (everything gets 404).
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes requests for `path` (exact, `*`, or a pattern with `*`) asking for `protocol`
    /// (`None` or `Some("")`: no subprotocol; `Some("*")`: any) to `handler`.
    ///
    /// Paths are matched against the request's path without its query, as the client sent
    /// it: still percent-encoded (`/caf%C3%A9`, not `/café`), and `..` is not resolved. A
    /// `*` in a path matches any run of characters (in WebSocket-Node it is a literal
    /// character, and regular expressions are accepted instead). Mounting the same path and
    /// protocol again replaces the handler, in the route's place in mount order
    /// (WebSocket-Node throws).
    pub fn mount<F, Fut>(&mut self, path: &str, protocol: Option<&str>, handler: F)
    where
        F: Fn(RoutedRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let route = Route {
            path: PathPattern::parse(path),
            path_source: path.to_owned(),
            protocol: Self::protocol_pattern(protocol),
            handler: Arc::new(move |request| Box::pin(handler(request))),
        };
        match self
            .routes
            .iter_mut()
            .find(|old| old.path_source == route.path_source && old.protocol == route.protocol)
        {
            Some(old) => *old = route,
            None => self.routes.push(route),
        }
    }

    /// Removes the routes mounted with exactly this path and protocol; returns how many.
    pub fn unmount(&mut self, path: &str, protocol: Option<&str>) -> usize {
        let protocol = Self::protocol_pattern(protocol);
        let before = self.routes.len();
        self.routes
            .retain(|route| !(route.path_source == path && route.protocol == protocol));
        before - self.routes.len()
    }

    fn protocol_pattern(protocol: Option<&str>) -> ProtocolPattern {
        match protocol {
            None | Some("") => ProtocolPattern::None,
            Some("*") => ProtocolPattern::Any,
            Some(name) => ProtocolPattern::Named(name.to_ascii_lowercase()),
        }
    }

    /// The handler's future for `request`, or a future that rejects it with 404. Spawn it
    /// (or await it).
    pub fn dispatch(&self, request: Request) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        // The path first, once: a request may list thousands of protocols.
        let path = request.path();
        let routes: Vec<&Route> = self
            .routes
            .iter()
            .filter(|route| route.path.matches(path))
            .collect();
        let protocols = request.requested_protocols();
        let found = if protocols.is_empty() {
            routes
                .iter()
                .find(|route| {
                    matches!(route.protocol, ProtocolPattern::Any | ProtocolPattern::None)
                })
                .map(|route| (*route, None))
        } else {
            protocols.iter().find_map(|requested| {
                routes
                    .iter()
                    .find(|route| match &route.protocol {
                        ProtocolPattern::Any => true,
                        ProtocolPattern::Named(name) => name == requested,
                        ProtocolPattern::None => false,
                    })
                    .map(|route| (*route, Some(requested.clone())))
            })
        };
        if let Some((route, protocol)) = found {
            return (route.handler)(RoutedRequest { request, protocol });
        }
        Box::pin(async move {
            let _ = request
                .reject(404, Some("No handler is available for the given request."))
                .await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns() {
        assert!(PathPattern::parse("*").matches("/anything"));
        assert!(PathPattern::parse("/chat").matches("/chat"));
        assert!(!PathPattern::parse("/chat").matches("/chat/1"));
        let rooms = PathPattern::parse("/rooms/*");
        assert!(rooms.matches("/rooms/"));
        assert!(rooms.matches("/rooms/42/x"));
        assert!(!rooms.matches("/room/42"));
        let events = PathPattern::parse("/api/*/events");
        assert!(events.matches("/api/v1/events"));
        assert!(!events.matches("/api/v1/events/more"));
        assert!(!events.matches("/api/events"));
        assert!(PathPattern::parse("*.ws").matches("/a/b.ws"));
    }

    #[test]
    fn mounting_a_path_and_protocol_again_replaces_the_handler() {
        let mut router = Router::new();
        router.mount("/chat", Some("Chat"), |_| async {});
        router.mount("/chat", Some(""), |_| async {});
        router.mount("/chat", Some("chat"), |_| async {});
        router.mount("/chat", None, |_| async {});
        // One route for "chat" (names are compared lower-cased), one for no protocol
        // (`Some("")` is none).
        assert_eq!(router.routes.len(), 2);
        assert_eq!(router.unmount("/chat", Some("CHAT")), 1);
        assert_eq!(router.unmount("/chat", None), 1);
        assert!(router.routes.is_empty());
    }
}
