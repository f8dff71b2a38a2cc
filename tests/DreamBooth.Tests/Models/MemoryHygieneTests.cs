using DreamBooth.Loading;
using DreamBooth.Tests.Infrastructure;
using TorchSharp;

namespace DreamBooth.Tests.Models;

/// <summary>Repeated forward passes inside one dispose scope per step must not leak tensors.</summary>
public class MemoryHygieneTests
{
    [Fact]
    public void LiveTensorCountStaysFlatAcrossForwardPasses()
    {
        using var unet = ComponentLoader.LoadUnet(TestPaths.ParityPath("unet-sd1-tiny"));
        using var vae = ComponentLoader.LoadVae(TestPaths.ParityPath("vae-tiny"));
        using var clip = ComponentLoader.LoadTextEncoder(TestPaths.ParityPath("clip-text-tiny"));
        using var ids = torch.randint(3, 997, [2, 77]);
        using var sample = torch.randn(2, 4, 16, 16);
        using var t = torch.tensor(new long[] { 500, 20 });

        void Step()
        {
            using var scope = torch.NewDisposeScope();
            using var _ = torch.no_grad();
            var ctx = clip.Forward(ids).LastHiddenState;
            var eps = unet.Forward(sample, t, ctx);
            var img = vae.Decode(eps);
            Assert.Equal(new long[] { 2, 3, 32, 32 }, img.shape);
        }

        Step(); // warm-up: lazily created tensors (if any) are counted before the baseline
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 5; i++) Step();
        long after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.Equal(before, after);
    }
}
