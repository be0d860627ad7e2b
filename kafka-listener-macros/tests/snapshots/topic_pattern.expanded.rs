async fn any_coupon_event(record: ConsumerRecord) {}
const _: () = {
    const _: () = ::kl::__private::assert_from_record::<ConsumerRecord>();
    fn __kafka_listener_factory() -> ::kl::__private::ListenerSpec {
        ::kl::__private::ListenerSpec::new("any_coupon_event")
            .topic_pattern("^coupon\\..*")
            .retry(
                ::kl::__private::RetryPolicy::builder()
                    .attempts(2)
                    .fixed()
                    .initial(::kl::__private::Duration::from_millis(250))
                    .build(),
            )
            .handler::<_, (ConsumerRecord,)>(any_coupon_event)
            .__message({
                #[allow(unused_imports)]
                use ::kl::__private::schema::{HasSchema as _, Named as _, NoSchema as _};
                (&&::kl::__private::schema::Probe::<ConsumerRecord>::new())
                    .message_schema()
            })
    }
    ::kl::__private::inventory::submit! {
        ::kl::__private::ListenerRegistration::new(__kafka_listener_factory)
    }
};
