/// Issues a coupon.
pub async fn issue(
    req: Json<IssueRequested>,
    meta: RecordMeta,
    app: State<App>,
) -> Result<(), ListenerError> {
    Ok(())
}
const _: () = {
    const _: () = ::kafka_listener::__private::assert_from_record::<
        Json<IssueRequested>,
    >();
    const _: () = ::kafka_listener::__private::assert_from_record::<RecordMeta>();
    const _: () = ::kafka_listener::__private::assert_from_record::<State<App>>();
    const _: () = ::kafka_listener::__private::assert_no_reply::<
        Result<(), ListenerError>,
    >();
    fn __kafka_listener_factory() -> ::kafka_listener::__private::ListenerSpec {
        ::kafka_listener::__private::ListenerSpec::new("issue")
            .topics(["coupon.issue.requested", "coupon.issue.retried"])
            .group_id("coupon-issuer")
            .concurrency(3)
            .ack_mode(::kafka_listener::__private::AckMode::Record)
            .auto_startup(false)
            .property("max.poll.interval.ms", "300000")
            .property("fetch.min.bytes", "1")
            .handler::<_, (Json<IssueRequested>, RecordMeta, State<App>)>(issue)
            .__message({
                #[allow(unused_imports)]
                use ::kafka_listener::__private::schema::{
                    HasSchema as _, Named as _, NoSchema as _,
                };
                (&&::kafka_listener::__private::schema::Probe::<
                    Json<IssueRequested>,
                >::new())
                    .message_schema()
            })
            .__message({
                #[allow(unused_imports)]
                use ::kafka_listener::__private::schema::{
                    HasSchema as _, Named as _, NoSchema as _,
                };
                (&&::kafka_listener::__private::schema::Probe::<RecordMeta>::new())
                    .message_schema()
            })
            .__message({
                #[allow(unused_imports)]
                use ::kafka_listener::__private::schema::{
                    HasSchema as _, Named as _, NoSchema as _,
                };
                (&&::kafka_listener::__private::schema::Probe::<State<App>>::new())
                    .message_schema()
            })
    }
    ::kafka_listener::__private::inventory::submit! {
        ::kafka_listener::__private::ListenerRegistration::new(__kafka_listener_factory)
    }
};
