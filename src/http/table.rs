//! The route table's machinery: matching a request to an endpoint with matchit, the auth layer
//! endpoints declare, and serving a request from CORS to the log line. Nothing here knows any
//! particular route: `routes.rs` declares them.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use r2mpu_api::auth::Scope;
use worker::{Env, Method, Request, Response};

use crate::config::Config;
use crate::error::{internal, ApiError, ApiResult};
use crate::http::auth::Claims;
use crate::http::cors::Cors;
use crate::http::ctx::{query_param, Ctx, Params};
use crate::http::log;
use crate::http::problem::problem_response;

pub type HandlerFuture = Pin<Box<dyn Future<Output = ApiResult<Response>>>>;

/// What an endpoint requires of the caller, and the handler that then runs.
enum Handler {
    Public(Box<dyn Fn(Ctx) -> HandlerFuture>),
    Authenticated(Guard, Box<dyn Fn(Ctx, Claims) -> HandlerFuture>),
}

/// What an authenticated endpoint asks of its caller before its handler runs.
#[derive(Clone, Copy)]
enum Guard {
    /// A bearer token granting this scope.
    Scope(Scope),
    /// Any valid bearer token: the handler hands on what the token grants.
    Token,
    /// A protocol's own authenticator (a signature scheme); the handler checks the scope each of
    /// the operations it serves needs.
    Own(Authenticator),
}

/// Verifies a request the way its protocol signs it and answers the token's claims.
pub type Authenticator = fn(&Ctx) -> ApiResult<Claims>;

/// Renders an error for the clients of one protocol, in place of a problem document.
pub type Render = fn(ApiError) -> Response;

struct Endpoint {
    method: Method,
    /// The `?action=` an endpoint of the guide's protocol answers to; `None` for REST routes.
    action: Option<&'static str>,
    handler: Handler,
    /// The path as declared (`/uploads/{uploadId}`), for the log line.
    route: String,
}

/// A route table: paths (matchit syntax) to per-method endpoints. Built once per isolate.
#[derive(Default)]
pub struct Table {
    router: matchit::Router<usize>,
    /// The paths of the guide's `?action=` endpoints alone: a request naming one of their
    /// actions is matched here first, so `/objects/x?action=delete` reaches the key `objects/x`
    /// it names, never the REST route `/objects/{*key}` with the key `x`.
    actions: matchit::Router<usize>,
    resources: Vec<(String, Vec<Endpoint>)>,
    /// Hooks every response passes through on its way out, with the request's path: how a
    /// protocol marks its own responses (tus's `Tus-Resumable`), errors and 404s included,
    /// without this layer naming it.
    stamps: Vec<Stamp>,
    /// Paths under these prefixes render their errors with their protocol's renderer.
    renders: Vec<(&'static str, Render)>,
}

/// See [`Table::stamp`].
pub type Stamp = fn(&str, Response) -> Response;

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    /// An endpoint anyone may call.
    pub fn public<F, Fut>(self, method: Method, path: &str, handler: F) -> Table
    where
        F: Fn(Ctx) -> Fut + 'static,
        Fut: Future<Output = ApiResult<Response>> + 'static,
    {
        self.add(method, path, None, Handler::Public(Box::new(move |cx| Box::pin(handler(cx)))))
    }

    /// An endpoint that needs a verified bearer token granting `scope`; the handler gets its claims.
    pub fn authenticated<F, Fut>(self, method: Method, path: &str, scope: Scope, handler: F) -> Table
    where
        F: Fn(Ctx, Claims) -> Fut + 'static,
        Fut: Future<Output = ApiResult<Response>> + 'static,
    {
        let handler = Box::new(move |cx, claims| Box::pin(handler(cx, claims)) as HandlerFuture);
        self.add(method, path, None, Handler::Authenticated(Guard::Scope(scope), handler))
    }

    /// An endpoint that needs a verified bearer token, whatever it grants; the handler gets its claims.
    pub fn verified<F, Fut>(self, method: Method, path: &str, handler: F) -> Table
    where
        F: Fn(Ctx, Claims) -> Fut + 'static,
        Fut: Future<Output = ApiResult<Response>> + 'static,
    {
        let handler = Box::new(move |cx, claims| Box::pin(handler(cx, claims)) as HandlerFuture);
        self.add(method, path, None, Handler::Authenticated(Guard::Token, handler))
    }

    /// An endpoint of a protocol that signs its requests its own way: `authenticator` verifies
    /// each and answers the claims; the handler checks the scope of the operation it performs.
    pub fn signed<F, Fut>(self, method: Method, path: &str, authenticator: Authenticator, handler: F) -> Table
    where
        F: Fn(Ctx, Claims) -> Fut + 'static,
        Fut: Future<Output = ApiResult<Response>> + 'static,
    {
        let handler = Box::new(move |cx, claims| Box::pin(handler(cx, claims)) as HandlerFuture);
        self.add(method, path, None, Handler::Authenticated(Guard::Own(authenticator), handler))
    }

    /// Renders the errors of every path under `prefix` with `render` (a protocol's own error
    /// format) instead of as problem documents.
    pub fn render_errors(mut self, prefix: &'static str, render: Render) -> Table {
        self.renders.push((prefix, render));
        self
    }

    /// An endpoint of the guide's protocol: `path?action=ACTION`, authenticated like the rest,
    /// answering only while `ACTION_PROTOCOL` is on.
    pub fn action<F, Fut>(self, method: Method, path: &str, action: &'static str, scope: Scope, handler: F) -> Table
    where
        F: Fn(Ctx, Claims) -> Fut + 'static,
        Fut: Future<Output = ApiResult<Response>> + 'static,
    {
        let handler = Box::new(move |cx, claims| Box::pin(handler(cx, claims)) as HandlerFuture);
        self.add(method, path, Some(action), Handler::Authenticated(Guard::Scope(scope), handler))
    }

    /// Passes every response through `stamp` (with the request's path) before it leaves.
    pub fn stamp(mut self, stamp: Stamp) -> Table {
        self.stamps.push(stamp);
        self
    }

    /// Panics on a malformed or conflicting route: the table is built by a unit test, so such a
    /// mistake fails `cargo test`, never a deployment.
    fn add(mut self, method: Method, path: &str, action: Option<&'static str>, handler: Handler) -> Table {
        let index = match self.resources.iter().position(|(p, _)| p == path) {
            Some(index) => index,
            None => {
                self.router
                    .insert(path, self.resources.len())
                    .unwrap_or_else(|e| panic!("route `{path}` cannot be added: {e}"));
                self.resources.push((path.to_string(), Vec::new()));
                self.resources.len() - 1
            }
        };
        if action.is_some() && self.actions.at(path).map(|m| *m.value) != Ok(index) {
            self.actions.insert(path, index).unwrap_or_else(|e| panic!("action route `{path}` cannot be added: {e}"));
        }
        let endpoints = &mut self.resources[index].1;
        assert!(
            endpoints.iter().all(|e| e.method != method || e.action != action),
            "route `{method} {path}` (action {action:?}) is declared twice"
        );
        endpoints.push(Endpoint { method, action, handler, route: path.to_string() });
        self
    }

    /// Finds the endpoint for `method`, `path` and `?action=` (if any), with the path's parameters.
    /// An `?action=` that one of the guide's endpoints answers to is matched against their paths
    /// first, whatever REST route the path also fits.
    fn lookup(&self, method: &str, path: &str, action: Option<&str>) -> ApiResult<(&Endpoint, Params)> {
        let declared = |name: &str| self.resources.iter().flat_map(|(_, e)| e).any(|e| e.action == Some(name));
        let as_action = action.filter(|name| declared(name)).and_then(|_| self.actions.at(path).ok());
        let matched = match as_action {
            Some(matched) => matched,
            None => self.router.at(path).map_err(|_| ApiError::NotFound)?,
        };
        let endpoints = &self.resources[*matched.value].1;
        let params = matched.params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let same_method = || endpoints.iter().filter(|e| e.method.as_ref() == method);
        let chosen = same_method()
            .find(|e| e.action.is_some() && e.action == action)
            .or_else(|| same_method().find(|e| e.action.is_none()));
        match chosen {
            Some(endpoint) => Ok((endpoint, params)),
            None if same_method().next().is_some() => Err(ApiError::NotFound),
            None => Err(ApiError::MethodNotAllowed { allow: self.methods_at(path)? }),
        }
    }

    /// The methods served at `path`, each once, in declaration order.
    fn methods_at(&self, path: &str) -> ApiResult<Vec<String>> {
        let matched = self.router.at(path).map_err(|_| ApiError::NotFound)?;
        let mut methods: Vec<String> = Vec::new();
        for name in self.resources[*matched.value].1.iter().map(|e| e.method.to_string()) {
            if !methods.contains(&name) {
                methods.push(name);
            }
        }
        Ok(methods)
    }

    /// Serves one request: answer a CORS preflight, or match, authenticate, run the handler,
    /// render any error; then add the CORS grant.
    pub async fn serve(&self, req: Request, env: Env) -> Response {
        // The request's log line (`log.rs`).
        let mut log = log::Entry::begin(&req);
        // Read once per request: CORS needs it even where dispatch fails before using it.
        let config = Config::from_env(&env);
        let cors = Cors::of(&req, config.as_ref().ok());
        let path = req.path();
        let result = if Cors::is_preflight(&req) {
            self.methods_at(&path).and_then(|methods| cors.preflight(&methods))
        } else {
            self.dispatch(req, env, config, &mut log).await
        };
        if let Err(error) = &result {
            log.failed(error.code());
        }
        let render =
            self.renders.iter().find(|(prefix, _)| under(&path, prefix)).map_or(problem_response as Render, |r| r.1);
        let response = cors.apply(result.unwrap_or_else(render));
        let response = self.stamps.iter().fold(response, |response, stamp| stamp(&path, response));
        log.finish(response) // writes the log line, adds X-Request-Id
    }

    async fn dispatch(
        &self,
        req: Request,
        env: Env,
        config: Result<Config, String>,
        log: &mut log::Entry,
    ) -> ApiResult<Response> {
        // `Request::method` reads any method it does not know as GET; go by the real name.
        let method = req.inner().method();
        let action = query_param(&req, "action");
        let (endpoint, params) = self.lookup(&method, &req.path(), action.as_deref())?;
        log.route = Some(endpoint.route.clone());
        log.upload_id = params.iter().find(|(k, _)| k == "uploadId").map(|(_, v)| v.clone());
        let config = Rc::new(config.map_err(|e| internal("configuration", e))?);
        if endpoint.action.is_some() && !config.action_protocol {
            return Err(ApiError::NotFound);
        }
        let cx = Ctx::new(req, env, config, params);
        match &endpoint.handler {
            Handler::Public(handler) => handler(cx).await,
            Handler::Authenticated(guard, handler) => {
                let claims = match guard {
                    Guard::Own(authenticator) => authenticator(&cx)?,
                    Guard::Scope(_) | Guard::Token => cx.authenticate()?,
                };
                log.subject = Some(claims.sub.clone());
                if let Guard::Scope(scope) = guard {
                    claims.require(*scope)?;
                }
                handler(cx, claims).await
            }
        }
    }

    /// Every endpoint the table serves, in declaration order, with what it requires: the list
    /// the spec-agreement test checks against openapi.yaml and the auth tests send requests to,
    /// so that a new route cannot escape either.
    pub fn endpoints(&self) -> Vec<EndpointInfo> {
        let mut list = Vec::new();
        for (path, endpoints) in &self.resources {
            list.extend(endpoints.iter().map(|e| EndpointInfo {
                method: e.method.to_string(),
                path: path.clone(),
                action: e.action,
                public: matches!(e.handler, Handler::Public(_)),
                scope: match &e.handler {
                    Handler::Authenticated(Guard::Scope(scope), _) => Some(*scope),
                    _ => None,
                },
                signed: matches!(e.handler, Handler::Authenticated(Guard::Own(_), _)),
            }));
        }
        list
    }

    #[cfg(test)]
    pub(crate) fn route_of(&self, method: &str, path: &str) -> ApiResult<(String, Params)> {
        let (path, action) = match path.split_once("?action=") {
            Some((path, action)) => (path, Some(action)),
            None => (path, None),
        };
        let (endpoint, params) = self.lookup(method, path, action)?;
        let resource = self.resources.iter().find(|(_, endpoints)| endpoints.iter().any(|e| std::ptr::eq(e, endpoint)));
        Ok((resource.expect("the endpoint is in the table").0.clone(), params))
    }
}

/// One endpoint as the table declares it (see [`Table::endpoints`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    pub method: String,
    /// In matchit syntax: `/objects/{*key}`.
    pub path: String,
    /// The `?action=` of the guide's protocol; `None` for REST routes (the OpenAPI contract).
    pub action: Option<&'static str>,
    /// Anyone may call it.
    pub public: bool,
    /// The scope a bearer token must grant; `None` for a public endpoint, one any valid token may
    /// call, or a signed one.
    pub scope: Option<Scope>,
    /// Its protocol authenticates it ([`Table::signed`]), outside the OpenAPI contract.
    pub signed: bool,
}

/// Whether `path` is `prefix` or below it.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}
