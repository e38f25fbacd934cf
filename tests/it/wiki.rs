//! Every curl example of the API wiki, sent as written (ids it returned substituted, and
//! spaces in URLs escaped as curl would need), through each node in turn: each succeeds
//! and answers in the wiki's shape.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{keys, Cluster, Options, CREATED_SHAPE, CRON_SHAPE};

fn assert_success(what: &str, body: &Value, code: u64) {
    assert_eq!(body["status"]["statusCode"], code, "{what}: {body}");
    assert_eq!(body["status"]["statusMessage"], "Success", "{what}: {body}");
    assert_eq!(body["status"]["statusType"], "Success", "{what}: {body}");
}

const ONE_TIME: &str = r#"{
    "appId": "revamp",
    "payload": "{}",
    "scheduleTime": 2687947561,
    "callback": {
        "type": "http",
        "details": {
            "url": "http://127.0.0.1:8080/goscheduler/healthcheck",
            "method": "GET",
            "headers": {
                "Content-Type": "application/json",
                "Accept": "application/json"
            }
        }
    }
}"#;

const CRON: &str = r#"{
    "appId": "Athena",
    "payload": "{}",
    "cronExpression": "*/5 * * * *",
    "callback": {
        "type": "http",
        "details": {
            "url": "http://127.0.0.1:8080/goscheduler/healthcheck",
            "method": "GET",
            "headers": {
                "Content-Type": "application/json",
                "Accept": "application/json"
            }
        }
    }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wiki_example_works_through_every_node() {
    let cluster = Cluster::start(3, Options::default()).await;
    // The cron example needs its app (the original required "Athena" for all crons).
    let athena = r#"{"appId": "Athena", "partitions": 1, "active": true}"#;
    assert_eq!(
        cluster
            .call(1, Method::POST, "/goscheduler/apps", Some(athena))
            .await
            .0,
        200
    );

    for n in 1..=3 {
        let (status, body) = cluster
            .call(n, Method::GET, "/goscheduler/healthcheck", None)
            .await;
        assert_eq!((status, &body["statusMessage"]), (200, &json!("Success")));

        let register =
            "{\n\t\"appId\": \"revamp\",\n\t\"partitions\": 2,\n        \"active\": true\n}";
        let (status, body) = cluster
            .call(n, Method::POST, "/goscheduler/apps", Some(register))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"status": {"statusCode": 201, "statusMessage": "Success", "statusType": "Success", "totalCount": 1},
                   "data": {"appId": "revamp", "partitions": 2, "active": true}})
        );

        let (status, body) = cluster
            .call(n, Method::GET, "/goscheduler/apps?app_id=revamp", None)
            .await;
        assert_eq!(status, 200);
        assert_success("get apps", &body, 200);
        assert_eq!(
            body["data"]["apps"],
            json!([{"appId": "revamp", "partitions": 2, "active": true}])
        );

        let (status, body) = cluster
            .call(n, Method::POST, "/goscheduler/schedules", Some(ONE_TIME))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_success("create one-time", &body, 201);
        let s = &body["data"]["schedule"];
        assert_eq!(keys(s), CREATED_SHAPE);
        assert_eq!(
            (&s["scheduleTime"], &s["scheduleGroup"]),
            (&json!(2687947561u64), &json!(2687947560u64))
        );
        let one_time = s["scheduleId"].as_str().unwrap().to_string();

        let (status, body) = cluster
            .call(n, Method::POST, "/goscheduler/schedules", Some(CRON))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_success("create cron", &body, 201);
        assert_eq!(keys(&body["data"]["schedule"]), CRON_SHAPE);
        let cron = body["data"]["schedule"]["scheduleId"]
            .as_str()
            .unwrap()
            .to_string();

        let (status, body) = cluster
            .call(
                n,
                Method::GET,
                "/goscheduler/crons/schedules?app_id=Athena&status=SCHEDULED",
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_success("get crons", &body, 200);
        assert!(body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["scheduleId"] == cron.as_str()));

        let (status, body) = cluster
            .call(
                n,
                Method::GET,
                &format!("/goscheduler/schedules/{one_time}"),
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_success("get schedule", &body, 200);
        assert_eq!(
            keys(&body["data"]["schedule"]),
            [
                "scheduleId",
                "payload",
                "appId",
                "scheduleTime",
                "partitionId",
                "scheduleGroup",
                "callback",
                "status"
            ]
        );

        let path = format!("/goscheduler/schedules/{cron}/runs?when=future&size=1");
        let (status, body) = cluster.call(n, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        assert_success("runs", &body, 200);
        assert_eq!(keys(&body["data"]), ["schedules", "continuationToken"]);
        assert_eq!(body["data"]["schedules"].as_array().unwrap().len(), 1);

        let path = "/goscheduler/apps/revamp/schedules?size=5&start_time=2023-06-28%2010:00:00&status=SUCCESS&end_time=2023-07-02%2012:00:00";
        let (status, body) = cluster.call(n, Method::GET, path, None).await;
        assert_eq!(status, 200, "{body}");
        assert_success("app schedules", &body, 200);
        assert_eq!(
            (
                &body["data"]["schedules"],
                &body["data"]["continuationToken"]
            ),
            (&json!([]), &json!(""))
        );

        let (status, body) = cluster
            .call(n, Method::POST, "/goscheduler/apps/revamp/deactivate", None)
            .await;
        assert_eq!(status, 200);
        assert_success("deactivate", &body, 201);
        assert_eq!(body["data"], json!({"appId": "revamp", "Active": false}));
        let (status, body) = cluster
            .call(n, Method::POST, "/goscheduler/apps/revamp/activate", None)
            .await;
        assert_eq!(status, 200);
        assert_success("activate", &body, 201);
        assert_eq!(body["data"], json!({"appId": "revamp", "Active": true}));

        let path = "/goscheduler/apps/revamp/bulk-action/reconcile?status=SUCCESS&start_time=2023-02-06%2010:47:00&end_time=2023-02-06%2011:50:00";
        let (status, body) = cluster.call(n, Method::POST, path, None).await;
        assert_eq!(status, 200, "{body}");
        assert_success("reconcile", &body, 200);
        assert!(body["remarks"]
            .as_str()
            .unwrap()
            .starts_with("reconcile initiated successfully for app: revamp"));

        let (status, body) = cluster
            .call(
                n,
                Method::DELETE,
                &format!("/goscheduler/schedules/{one_time}"),
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_success("delete", &body, 200);
        assert_eq!(body["data"]["schedule"]["scheduleId"], one_time.as_str());
        assert_eq!(
            keys(&body["data"]["schedule"]).last(),
            Some(&"httpCallback")
        );
        let (status, body) = cluster
            .call(
                n,
                Method::DELETE,
                &format!("/goscheduler/schedules/{one_time}"),
                None,
            )
            .await;
        assert_eq!(
            (status, &body["status"]["statusMessage"]),
            (404, &json!("not found"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_endpoint() {
    let cluster = Cluster::start(1, Options::default()).await;
    let (status, doc) = cluster
        .call(1, Method::GET, "/goscheduler/openapi.json", None)
        .await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let mut documented: Vec<String> = vec![];
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    let mut expected = vec![
        "GET /goscheduler/healthcheck",
        "POST /goscheduler/apps",
        "GET /goscheduler/apps",
        "POST /goscheduler/apps/{app_id}/activate",
        "POST /goscheduler/apps/{app_id}/deactivate",
        "GET /goscheduler/apps/{app_id}/signing-secret",
        "POST /goscheduler/apps/{app_id}/signing-secret/rotate",
        "POST /goscheduler/apps/{app_id}/tokens",
        "GET /goscheduler/apps/{app_id}/tokens",
        "DELETE /goscheduler/apps/{app_id}/tokens/{token_id}",
        "POST /goscheduler/schedules",
        "POST /goscheduler/schedules/batch",
        "GET /goscheduler/schedules/{id}",
        "DELETE /goscheduler/schedules/{id}",
        "GET /goscheduler/schedules/{id}/runs",
        "PATCH /goscheduler/schedules/{id}",
        "PUT /goscheduler/schedules/{id}/pause",
        "POST /goscheduler/schedules/{id}/pause",
        "PUT /goscheduler/schedules/{id}/resume",
        "POST /goscheduler/schedules/{id}/resume",
        "POST /goscheduler/schedules/{id}/trigger",
        "PUT /goscheduler/schedules/{id}/updateRecurringSchedule",
        "GET /goscheduler/apps/{appId}/schedules/{scheduleId}/audit-logs",
        "GET /goscheduler/crons/schedules",
        "GET /goscheduler/apps/{app_id}/schedules",
        "POST /goscheduler/apps/{app_id}/bulk-action/{action}",
        "GET /goscheduler/apps/{app_id}/bulk-action/jobs/{job_id}",
    ];
    expected.sort();
    assert_eq!(documented, expected);
    // Bearer tokens are declared for every endpoint; the healthcheck needs none.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["security"],
        json!([{"bearer": []}]),
        "{}",
        doc["security"]
    );
    assert_eq!(
        doc["paths"]["/goscheduler/healthcheck"]["get"]["security"],
        json!([{}])
    );
    // Every reference resolves to a schema in the document.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = doc.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(
            schemas.contains_key(name),
            "dangling schema reference {name}"
        );
    }
    assert!(schemas["CreateSchedule"]["properties"]
        .get("cronExpression")
        .is_some());
}
