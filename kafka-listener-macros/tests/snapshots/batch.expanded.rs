async fn write_audit(events: Vec<Json<AuditEvent>>, db: State<Db>) {}
const _: () = {
    const _: () = ::kafka_listener::__private::assert_from_batch::<
        Vec<Json<AuditEvent>>,
    >();
    const _: () = ::kafka_listener::__private::assert_from_batch::<State<Db>>();
    fn __kafka_listener_factory() -> ::kafka_listener::__private::ListenerSpec {
        ::kafka_listener::__private::ListenerSpec::new("audit-writer")
            .topics(["audit"])
            .ack_mode(::kafka_listener::__private::AckMode::Batch)
            .batch_handler::<_, (Vec<Json<AuditEvent>>, State<Db>)>(write_audit)
            .__message({
                #[allow(unused_imports)]
                use ::kafka_listener::__private::schema::{
                    HasSchema as _, Named as _, NoSchema as _,
                };
                (&&::kafka_listener::__private::schema::Probe::<
                    Vec<Json<AuditEvent>>,
                >::new())
                    .message_schema()
            })
            .__message({
                #[allow(unused_imports)]
                use ::kafka_listener::__private::schema::{
                    HasSchema as _, Named as _, NoSchema as _,
                };
                (&&::kafka_listener::__private::schema::Probe::<State<Db>>::new())
                    .message_schema()
            })
    }
    ::kafka_listener::__private::inventory::submit! {
        ::kafka_listener::__private::ListenerRegistration::new(__kafka_listener_factory)
    }
};
