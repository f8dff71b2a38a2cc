using System.Collections.Concurrent;
using DreamBooth.Loading;
using DreamBooth.Pipelines;
using DreamBooth.Sampling;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Tests.TinyWorld;
using TorchSharp;

namespace DreamBooth.Tests.Pipelines;

public class CpuWorkersTests
{
    [Fact]
    public void RunsEveryIndexOnceOnSeveralThreadsWithTheCallersThreadCountAndGradMode()
    {
        using var threads = CpuWorkers.UseThreads(1);
        var seen = new ConcurrentDictionary<int, (int Threads, bool Grad)>();
        int active = 0, most = 0;
        var deadline = DateTime.UtcNow.AddSeconds(20);
        using (torch.no_grad())
            CpuWorkers.For(40, 2, i =>
            {
                seen[i] = (torch.get_num_threads(), torch.is_grad_enabled());
                int now = Interlocked.Increment(ref active);
                lock (seen) most = Math.Max(most, now);
                // wait (bounded) until two calls have run at the same time
                while (Volatile.Read(ref most) < 2 && DateTime.UtcNow < deadline) Thread.Sleep(1);
                Interlocked.Decrement(ref active);
            });
        Assert.Equal(Enumerable.Range(0, 40), seen.Keys.Order());
        Assert.All(seen.Values, v => Assert.Equal((1, false), v));
        Assert.Equal(2, most);
        // one worker: in order, on the calling thread
        var order = new List<(int, int)>();
        CpuWorkers.For(5, 1, i => order.Add((i, Environment.CurrentManagedThreadId)));
        Assert.Equal(Enumerable.Range(0, 5).Select(i => (i, Environment.CurrentManagedThreadId)), order);
        Assert.True(torch.is_grad_enabled());
    }

    [Fact]
    public void AWorkersExceptionComesBackAsItWasThrownAndCancellationStopsTheRest()
    {
        var e = Assert.Throws<InvalidOperationException>(() => CpuWorkers.For(8, 2, i => { if (i == 3) throw new InvalidOperationException("image 3 failed"); }));
        Assert.Equal("image 3 failed", e.Message);
        using var cts = new CancellationTokenSource();
        int ran = 0;
        Assert.ThrowsAny<OperationCanceledException>(() => CpuWorkers.For(1000, 2, i => { Interlocked.Increment(ref ran); cts.Cancel(); }, cts.Token));
        Assert.True(ran < 1000);
        Assert.ThrowsAny<OperationCanceledException>(() => CpuWorkers.For(3, 1, _ => cts.Cancel(), cts.Token));
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuWorkers.For(-1, 2, _ => { }));
    }

    [Fact]
    public void UseThreadsRestoresTheCountBefore()
    {
        int before = torch.get_num_threads();
        int other = before == 1 ? 2 : 1;
        using (CpuWorkers.UseThreads(other)) Assert.Equal(other, torch.get_num_threads());
        Assert.Equal(before, torch.get_num_threads());
        using (CpuWorkers.UseThreads(0)) Assert.Equal(before, torch.get_num_threads());
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuWorkers.UseThreads(-1));
        Assert.Equal(1, CpuWorkers.FillCores(Environment.ProcessorCount));
        Assert.Equal(Environment.ProcessorCount, CpuWorkers.FillCores(1));
    }

    [Fact]
    public void ImagesDenoisedOnSeveralWorkersAreBitIdenticalToOneWorkers()
    {
        using var threads = CpuWorkers.UseThreads(1);
        using var model = ModelSource.Load(QuickstartTests.TinyModel);
        foreach (var (sampler, rescale) in new[] { (Sampler.DpmPP2M, 0.0), (Sampler.EulerAncestral, 0.7) })
        {
            var request = new GenerationRequest
            {
                Prompt = "a zwx diamond on a red background", NegativePrompt = "blue", Seeds = [1, 2, 3], Steps = 4, Sampler = sampler,
                GuidanceScale = 5, GuidanceRescale = rescale,
            };
            using var one = new StableDiffusionPipeline(model).Generate(request);
            using var two = new StableDiffusionPipeline(model) { ImageWorkers = 2 }.Generate(request);
            using var three = new StableDiffusionPipeline(model) { ImageWorkers = 3 }.Generate(request);
            Assert.Equal(new long[] { 3, 3, 64, 64 }, two.Images.shape);
            Assert.True(TensorAssert.BitEqual(one.Images, two.Images), $"{sampler}: 2 workers differ from 1");
            Assert.True(TensorAssert.BitEqual(one.Images, three.Images), $"{sampler}: 3 workers differ from 1");
            Assert.Equal(one.Parameters.Select(p => p.Seed), two.Parameters.Select(p => p.Seed));
        }
        // a cancelled request with several workers stops
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => new StableDiffusionPipeline(model) { ImageWorkers = 2 }.Generate(
            new GenerationRequest { Prompt = "a diamond", Seeds = [1, 2], Steps = 2 }, cancellationToken: cts.Token));
    }
}
