async fn settle(
    payment: Json<Payment>,
    key: Key<String>,
    ack: Acknowledgment,
) -> Result<(), ListenerError> {
    ack.acknowledge();
    Ok(())
}
const _: () = {
    const _: () = ::kafka_listener::__private::assert_from_record::<Json<Payment>>();
    const _: () = ::kafka_listener::__private::assert_from_record::<Key<String>>();
    const _: () = ::kafka_listener::__private::assert_from_record::<Acknowledgment>();
    const _: () = ::kafka_listener::__private::assert_no_reply::<
        Result<(), ListenerError>,
    >();
    fn __kafka_listener_factory() -> ::kafka_listener::__private::ListenerSpec {
        ::kafka_listener::__private::ListenerSpec::new("settle")
            .topics(["payments"])
            .ack_mode(::kafka_listener::__private::AckMode::ManualImmediate)
            .retry(
                ::kafka_listener::__private::RetryPolicy::builder()
                    .attempts(5)
                    .exponential()
                    .initial(::kafka_listener::__private::Duration::from_millis(100))
                    .max(::kafka_listener::__private::Duration::from_millis(10000))
                    .multiplier(1.5)
                    .jitter(false)
                    .build(),
            )
            .handler::<_, (Json<Payment>, Key<String>, Acknowledgment)>(settle)
            .__message({
                #[allow(unused_imports)]
                use ::kafka_listener::__private::schema::{
                    HasSchema as _, Named as _, NoSchema as _,
                };
                (&&::kafka_listener::__private::schema::Probe::<Json<Payment>>::new())
                    .message_schema()
            })
            .__message({
                #[allow(unused_imports)]
                use ::kafka_listener::__private::schema::{
                    HasSchema as _, Named as _, NoSchema as _,
                };
                (&&::kafka_listener::__private::schema::Probe::<Key<String>>::new())
                    .message_schema()
            })
            .__message({
                #[allow(unused_imports)]
                use ::kafka_listener::__private::schema::{
                    HasSchema as _, Named as _, NoSchema as _,
                };
                (&&::kafka_listener::__private::schema::Probe::<Acknowledgment>::new())
                    .message_schema()
            })
    }
    ::kafka_listener::__private::inventory::submit! {
        ::kafka_listener::__private::ListenerRegistration::new(__kafka_listener_factory)
    }
};
