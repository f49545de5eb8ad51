//! One of three futures with the same output: what a transport enum's operation returns
//! when its variants' futures differ in type (`downstream::Downstream`), so the seam
//! costs a discriminant check per poll instead of a future layer per operation.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

pin_project_lite::pin_project! {
    /// The future of the first, second or third variant.
    #[project = EitherProj]
    #[derive(Debug)]
    pub(super) enum Either<A, B, C> {
        First { #[pin] future: A },
        Second { #[pin] future: B },
        Third { #[pin] future: C },
    }
}

impl<A, B, C> Future for Either<A, B, C>
where
    A: Future,
    B: Future<Output = A::Output>,
    C: Future<Output = A::Output>,
{
    type Output = A::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<A::Output> {
        match self.project() {
            EitherProj::First { future } => future.poll(cx),
            EitherProj::Second { future } => future.poll(cx),
            EitherProj::Third { future } => future.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_side_completes_with_its_own_output() {
        type Ready = std::future::Ready<u8>;
        let first: Either<_, Ready, Ready> = Either::First {
            future: std::future::ready(1u8),
        };
        let second: Either<Ready, _, Ready> = Either::Second {
            future: async { 2u8 },
        };
        let third: Either<Ready, Ready, _> = Either::Third {
            future: async { 3u8 },
        };
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(std::pin::pin!(first).poll(&mut cx), Poll::Ready(1));
        assert_eq!(std::pin::pin!(second).poll(&mut cx), Poll::Ready(2));
        assert_eq!(std::pin::pin!(third).poll(&mut cx), Poll::Ready(3));
    }
}
