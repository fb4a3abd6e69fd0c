//! Every endpoint of r2mpu, read top to bottom: method, path, what the caller needs, handler.
//! `openapi.yaml` describes the same list; a test below checks they agree.

use r2mpu_api::auth::Scope::{ObjectsDelete, ObjectsRead, UploadsWrite};
use worker::Method::{Delete, Get, Head, Options, Patch, Post, Put};

use crate::http::Table;
use crate::meta;
use crate::protocols::{direct, guide, listing, objects, s3, tus, uploads};

pub fn table() -> Table {
    Table::new()
        .public(Get, "/", meta::page)
        .public(Get, "/healthz", meta::health)
        .public(Get, "/openapi.yaml", meta::openapi)
        // Uploads: start, feed parts, inspect (resume), complete, abort.
        .authenticated(Post, "/uploads", UploadsWrite, uploads::create)
        .authenticated(Get, "/uploads", UploadsWrite, listing::list)
        .authenticated(Get, "/uploads/{uploadId}", UploadsWrite, uploads::get)
        .authenticated(Delete, "/uploads/{uploadId}", UploadsWrite, uploads::abort)
        .authenticated(Put, "/uploads/{uploadId}/parts/{partNumber}", UploadsWrite, uploads::put_part)
        .authenticated(Post, "/uploads/{uploadId}/complete", UploadsWrite, uploads::complete)
        // Direct parts: presigned URLs to send parts straight to R2, and the report of each.
        .authenticated(Post, "/uploads/{uploadId}/parts/{partNumber}/url", UploadsWrite, direct::part_url)
        .authenticated(Post, "/uploads/{uploadId}/urls", UploadsWrite, direct::part_urls)
        .authenticated(Post, "/uploads/{uploadId}/parts/{partNumber}", UploadsWrite, direct::report_part)
        // Objects: list, read (ranges, conditional), delete. Keys may contain `/`.
        .authenticated(Get, "/objects", ObjectsRead, objects::list)
        .authenticated(Get, "/objects/{*key}", ObjectsRead, objects::get)
        .authenticated(Head, "/objects/{*key}", ObjectsRead, objects::head)
        .authenticated(Delete, "/objects/{*key}", ObjectsDelete, objects::delete)
        // S3 credentials from the bearer token, whatever it grants (it carries over).
        .verified(Post, "/credentials", s3::credentials::issue)
        // S3, path-style, on the same uploads and objects: each method's handler serves the
        // operations S3 puts under it (named by the query: `?uploads`, `?uploadId=`, ...) and
        // checks the scope of each; signed with SigV4 by credentials from `/credentials`.
        .signed(Get, "/s3", s3::verify, s3::bucket::list_buckets)
        .signed(Head, "/s3/{bucket}", s3::verify, s3::bucket::head)
        .signed(Get, "/s3/{bucket}", s3::verify, s3::bucket::get)
        .signed(Get, "/s3/{bucket}/", s3::verify, s3::bucket::get)
        .signed(Put, "/s3/{bucket}/{*key}", s3::verify, s3::objects::put)
        .signed(Post, "/s3/{bucket}/{*key}", s3::verify, s3::multipart::post)
        .signed(Get, "/s3/{bucket}/{*key}", s3::verify, s3::objects::get)
        .signed(Head, "/s3/{bucket}/{*key}", s3::verify, s3::objects::head)
        .signed(Delete, "/s3/{bucket}/{*key}", s3::verify, s3::objects::delete)
        .render_errors("/s3", s3::render)
        // tus 1.0 on the same uploads: discover, create, resume (HEAD), append (PATCH), terminate.
        .public(Options, "/tus", tus::options)
        .authenticated(Post, "/tus", UploadsWrite, tus::create)
        .authenticated(Head, "/tus/{uploadId}", UploadsWrite, tus::head)
        .authenticated(Patch, "/tus/{uploadId}", UploadsWrite, tus::patch)
        .authenticated(Delete, "/tus/{uploadId}", UploadsWrite, tus::terminate)
        // Every response under `/tus`, errors included, says which tus version it speaks.
        .stamp(tus::stamp)
        // The guide's `/{key}?action=` protocol, for clients written against it (ACTION_PROTOCOL).
        .action(Post, "/{*key}", "mpu-create", UploadsWrite, guide::create)
        .action(Put, "/{*key}", "mpu-uploadpart", UploadsWrite, guide::upload_part)
        .action(Post, "/{*key}", "mpu-complete", UploadsWrite, guide::complete)
        .action(Delete, "/{*key}", "mpu-abort", UploadsWrite, guide::abort)
        .action(Get, "/{*key}", "get", ObjectsRead, objects::get)
        .action(Delete, "/{*key}", "delete", ObjectsDelete, objects::delete)
}

#[cfg(test)]
mod tests {
    use super::table;
    use crate::error::ApiError;

    #[test]
    fn the_table_builds_and_routes_each_path_to_its_resource() {
        let table = table();
        let route = |method: &str, path: &str| table.route_of(method, path).map(|(route, _)| route);
        assert_eq!(route("POST", "/uploads"), Ok("/uploads".into()));
        assert_eq!(route("PUT", "/uploads/abc/parts/7"), Ok("/uploads/{uploadId}/parts/{partNumber}".into()));
        assert_eq!(route("POST", "/uploads/abc/parts/7"), Ok("/uploads/{uploadId}/parts/{partNumber}".into()));
        assert_eq!(route("POST", "/uploads/abc/parts/7/url"), Ok("/uploads/{uploadId}/parts/{partNumber}/url".into()));
        assert_eq!(route("POST", "/uploads/abc/urls"), Ok("/uploads/{uploadId}/urls".into()));
        assert_eq!(route("GET", "/objects/a/b/c.bin"), Ok("/objects/{*key}".into()));
        assert_eq!(route("GET", "/objects"), Ok("/objects".into()));
        assert_eq!(route("PUT", "/a/b.bin?action=mpu-uploadpart"), Ok("/{*key}".into()));
        assert_eq!(route("GET", "/objects/a?action=frobnicate"), Ok("/objects/{*key}".into()), "not the guide's");
    }

    /// Issue 8, item 8: the guide's client names the key `objects/x` in `/objects/x?action=delete`;
    /// routing it to `DELETE /objects/{*key}` would delete the object `x` instead.
    #[test]
    fn a_guide_action_acts_on_the_whole_path_as_its_key_whatever_rest_route_the_path_fits() {
        let table = table();
        let key_of = |method: &str, path: &str| {
            let (route, params) = table.route_of(method, path).unwrap();
            (route, params.into_iter().find(|(name, _)| name == "key").map(|(_, key)| key))
        };
        let action_on = |key: &str| ("/{*key}".to_string(), Some(key.to_string()));
        assert_eq!(key_of("DELETE", "/objects/x?action=delete"), action_on("objects/x"));
        assert_eq!(key_of("GET", "/objects/a/b?action=get"), action_on("objects/a/b"));
        assert_eq!(key_of("POST", "/uploads/big.bin?action=mpu-create"), action_on("uploads/big.bin"));
        assert_eq!(key_of("POST", "/uploads?action=mpu-create"), action_on("uploads"));
        assert_eq!(key_of("PUT", "/uploads/u/parts/1?action=mpu-uploadpart"), action_on("uploads/u/parts/1"));
        assert_eq!(key_of("POST", "/uploads/k/complete?action=mpu-complete"), action_on("uploads/k/complete"));
        assert_eq!(key_of("DELETE", "/uploads/k?action=mpu-abort"), action_on("uploads/k"));
        // Without an action of the guide, the REST routes answer as ever.
        assert_eq!(key_of("DELETE", "/objects/x"), ("/objects/{*key}".to_string(), Some("x".to_string())));
        // An action under a method that does not serve it is refused, never sent to REST.
        assert_eq!(table.route_of("DELETE", "/objects/x?action=get").unwrap_err(), ApiError::NotFound);
    }

    #[test]
    fn parameters_are_captured_keys_included_with_their_slashes() {
        let (_, params) = table().route_of("GET", "/objects/photos/2026/cat%20one.jpg").unwrap();
        assert_eq!(params, vec![("key".to_string(), "photos/2026/cat%20one.jpg".to_string())]);
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405_with_the_allowed_ones() {
        let table = table();
        assert_eq!(table.route_of("GET", "/nope").unwrap_err(), ApiError::NotFound);
        assert_eq!(table.route_of("GET", "/nope?action=mpu-create").unwrap_err(), ApiError::NotFound);
        assert_eq!(table.route_of("GET", "/uploads/x/parts").unwrap_err(), ApiError::NotFound);
        assert_eq!(
            table.route_of("PATCH", "/uploads/abc").unwrap_err(),
            ApiError::MethodNotAllowed { allow: vec!["GET".into(), "DELETE".into()] }
        );
        assert!(matches!(table.route_of("QUERY", "/uploads/abc"), Err(ApiError::MethodNotAllowed { .. })));
        assert_eq!(
            table.route_of("PATCH", "/some/key").unwrap_err(),
            ApiError::MethodNotAllowed { allow: vec!["POST".into(), "PUT".into(), "DELETE".into(), "GET".into()] },
            "each method once, though several actions share it"
        );
    }

    /// Each operation's `security` (or the document's, when it has none) as one line:
    /// `public`, or `bearerAuth [scope, ...]`.
    fn security_of(requirement: &serde_yaml::Value) -> String {
        let alternatives = requirement.as_sequence().expect("security is a list");
        if alternatives.is_empty() {
            return "public".into();
        }
        let lines: Vec<String> = alternatives
            .iter()
            .flat_map(|alternative| alternative.as_mapping().expect("a security requirement").iter())
            .map(|(scheme, scopes)| {
                let scopes: Vec<&str> = scopes.as_sequence().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
                format!("{} {scopes:?}", scheme.as_str().unwrap())
            })
            .collect();
        lines.join(" or ")
    }

    /// The REST routes and openapi.yaml's operations are the same list, and each operation
    /// declares the security the table enforces: none for public routes, `bearerAuth` with the
    /// one scope the route requires for the others.
    #[test]
    fn openapi_yaml_describes_exactly_the_routes_of_the_table_and_their_security() {
        let spec: serde_yaml::Value = serde_yaml::from_str(include_str!("../openapi.yaml")).unwrap();
        let mut documented = Vec::new();
        for (path, item) in spec["paths"].as_mapping().unwrap() {
            for (method, operation) in item.as_mapping().unwrap() {
                let method = method.as_str().unwrap();
                if ["get", "put", "post", "delete", "head", "patch", "options"].contains(&method) {
                    let security = security_of(operation.get("security").unwrap_or(&spec["security"]));
                    documented.push((method.to_uppercase(), path.as_str().unwrap().to_string(), security));
                }
            }
        }
        let mut served: Vec<(String, String, String)> = table()
            .endpoints()
            .into_iter()
            .filter(|e| e.action.is_none() && !e.signed)
            .map(|e| {
                let security = match e.scope {
                    None if e.public => "public".to_string(),
                    None => "bearerAuth []".to_string(),
                    Some(scope) => format!("bearerAuth {:?}", [scope.as_str()]),
                };
                (e.method, e.path.replace("{*key}", "{key}"), security)
            })
            .collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
    }

    /// The guide's protocol is not in openapi.yaml; every one of its endpoints still needs a token.
    #[test]
    fn every_action_of_the_guides_protocol_is_authenticated() {
        let actions: Vec<_> = table().endpoints().into_iter().filter(|e| e.action.is_some()).collect();
        assert_eq!(actions.len(), 6);
        assert!(actions.iter().all(|e| e.scope.is_some()), "{actions:?}");
    }
}
