//! Every endpoint of r2mpu, read top to bottom: method, path, what the caller needs, handler.
//! `openapi.yaml` describes the same list; a test below checks they agree.

use r2mpu_api::auth::Scope::{ObjectsDelete, ObjectsRead, UploadsWrite};
use worker::Method::{Delete, Get, Head, Post, Put};

use crate::http::Table;
use crate::{compat, index, meta, objects, uploads};

pub fn table() -> Table {
    Table::new()
        .public(Get, "/healthz", meta::health)
        .public(Get, "/openapi.yaml", meta::openapi)
        // Uploads: start, feed parts, inspect (resume), complete, abort.
        .authenticated(Post, "/uploads", UploadsWrite, uploads::create)
        .authenticated(Get, "/uploads", UploadsWrite, index::list)
        .authenticated(Get, "/uploads/{uploadId}", UploadsWrite, uploads::get)
        .authenticated(Delete, "/uploads/{uploadId}", UploadsWrite, uploads::abort)
        .authenticated(Put, "/uploads/{uploadId}/parts/{partNumber}", UploadsWrite, uploads::put_part)
        .authenticated(Post, "/uploads/{uploadId}/complete", UploadsWrite, uploads::complete)
        // Objects: list, read (ranges, conditional), delete. Keys may contain `/`.
        .authenticated(Get, "/objects", ObjectsRead, objects::list)
        .authenticated(Get, "/objects/{*key}", ObjectsRead, objects::get)
        .authenticated(Head, "/objects/{*key}", ObjectsRead, objects::head)
        .authenticated(Delete, "/objects/{*key}", ObjectsDelete, objects::delete)
        // The guide's `/{key}?action=` protocol, for clients written against it (ACTION_PROTOCOL).
        .action(Post, "/{*key}", "mpu-create", UploadsWrite, compat::create)
        .action(Put, "/{*key}", "mpu-uploadpart", UploadsWrite, compat::upload_part)
        .action(Post, "/{*key}", "mpu-complete", UploadsWrite, compat::complete)
        .action(Delete, "/{*key}", "mpu-abort", UploadsWrite, compat::abort)
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
        assert_eq!(route("GET", "/objects/a/b/c.bin"), Ok("/objects/{*key}".into()));
        assert_eq!(route("GET", "/objects"), Ok("/objects".into()));
        assert_eq!(route("PUT", "/a/b.bin?action=mpu-uploadpart"), Ok("/{*key}".into()));
        assert_eq!(route("GET", "/objects/a?action=get"), Ok("/objects/{*key}".into()), "REST paths win");
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

    #[test]
    fn openapi_yaml_describes_exactly_the_routes_of_the_table() {
        let spec: serde_yaml::Value = serde_yaml::from_str(include_str!("../openapi.yaml")).unwrap();
        let mut documented = Vec::new();
        for (path, item) in spec["paths"].as_mapping().unwrap() {
            for method in item.as_mapping().unwrap().keys().filter_map(|m| m.as_str()) {
                if ["get", "put", "post", "delete", "head", "patch"].contains(&method) {
                    documented.push((method.to_uppercase(), path.as_str().unwrap().to_string()));
                }
            }
        }
        let mut served: Vec<(String, String)> =
            table().routes().into_iter().map(|(m, p)| (m, p.replace("{*key}", "{key}"))).collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
    }
}
