using System.Runtime.ExceptionServices;
using TorchSharp;

namespace DreamBooth.Pipelines;

/// <summary>
/// Independent pieces of CPU work — the images of a batch, or whole generations — run on several threads at once, each
/// with libtorch's thread count and grad mode of the calling thread. For a small model on few cores this is faster
/// than libtorch's own parallelism inside each operation: the tiny model's operations are too short for its OpenMP
/// threads, which (with <c>OMP_WAIT_POLICY=PASSIVE</c>, <see cref="NativeEnvironment"/>) are put to sleep and woken
/// for every one of them. Measured on the 2-core VM (2026-11-28, the tiny UNet, batch 2 as with classifier-free
/// guidance): 30 forward passes took 1.37 s on one thread with 1 libtorch thread and 0.64 s on two threads with 1
/// libtorch thread each. Results do not depend on the number of workers: each piece runs the same kernels with the same
/// thread count wherever it runs (tests compare them bit for bit).
/// </summary>
public static class CpuWorkers
{
    /// <summary>Workers that fill the machine's cores when each uses <paramref name="threadsPerWorker"/> libtorch threads (at least 1).</summary>
    public static int FillCores(int threadsPerWorker) => Math.Max(1, Environment.ProcessorCount / Math.Max(1, threadsPerWorker));

    /// <summary>
    /// Sets libtorch's intra-op thread count to <paramref name="threads"/> until the result is disposed, which restores
    /// the count before (on the thread that disposes it; libtorch keeps the count per thread). 0 changes nothing.
    /// </summary>
    public static IDisposable UseThreads(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        int before = torch.get_num_threads();
        if (threads == 0 || threads == before) return new Restore(null);
        torch.set_num_threads(threads);
        return new Restore(() => torch.set_num_threads(before));
    }

    sealed class Restore(Action? undo) : IDisposable
    {
        Action? undo = undo;

        public void Dispose()
        {
            undo?.Invoke();
            undo = null;
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/> for 0 … <paramref name="count"/> − 1 on up to <paramref name="workers"/> threads (the
    /// calling thread is one of them; with one worker, in order on the calling thread). Each call sees the caller's
    /// libtorch thread count and grad mode. Tensors a call returns through shared state must leave its thread's dispose
    /// scopes (<c>DisposeScope.Detach</c>) and be attached by the caller afterwards. The first exception is rethrown as
    /// it was thrown; cancellation stops calls that have not started.
    /// </summary>
    public static void For(int count, int workers, Action<int> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (workers <= 1 || count <= 1)
        {
            for (int i = 0; i < count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                body(i);
            }
            return;
        }
        int threads = torch.get_num_threads();
        bool grad = torch.is_grad_enabled();
        try
        {
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = workers, CancellationToken = cancellationToken }, i =>
            {
                cancellationToken.ThrowIfCancellationRequested(); // Parallel.For itself checks only now and then
                // libtorch keeps thread count and grad mode per thread: a pool thread takes the caller's
                if (torch.get_num_threads() != threads) torch.set_num_threads(threads);
                using var gradMode = torch.enable_grad(grad);
                body(i);
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
    }
}
